/**
 * The Compare tab: pick runs, see the config keys that differ and their curves overlaid; adaptation methods on
 * one target (graft adapt runs in the runs folder); and tune studies.
 */
import type { AdaptComparison } from '../../run/adapt-results.js';
import type { RunComparison } from '../../run/runs.js';
import type { StudyView } from '../../tune/charts.js';
import type { ListedRun } from '../api-types.js';
import { api, url } from './api.js';
import { chart, fill, h, num, pct, status } from './dom.js';

export async function renderCompare(main: HTMLElement): Promise<void> {
  const runs = (await api<ListedRun[]>('/api/runs')).filter((r) => r.kind === 'train');
  const boxes = runs.map((r) => h('input', { type: 'checkbox', value: r.name, checked: r.state === 'finished' }));
  const out = h('div', { id: 'comparison' });
  const curves = h('div', { id: 'compare-curves' });
  const go = async () => {
    const names = boxes.filter((b) => b.checked).map((b) => b.value);
    try {
      const c = await api<RunComparison>('/api/compare', { query: { runs: names.join(',') } });
      fill(
        out,
        c.diff.length
          ? h(
              'table',
              { id: 'config-diff' },
              h('tr', {}, h('th', {}, 'config key'), ...c.runs.map((r) => h('th', {}, r))),
              ...c.diff.map((d) => h('tr', {}, h('td', {}, d.key), ...d.values.map((v) => h('td', {}, v === undefined ? '–' : JSON.stringify(v))))),
            )
          : h('p', {}, 'The configs are the same.'),
      );
      await chart(curves, c.curves);
      status('');
    } catch (e) {
      status((e as Error).message, true);
    }
  };
  main.append(
    h(
      'section',
      {},
      h('h2', {}, 'Compare'),
      h('div', { class: 'pick' }, ...runs.map((r, i) => h('label', {}, boxes[i]!, ` ${r.name} (${r.state})`))),
      h('button', { id: 'compare', onclick: go }, 'Compare'),
    ),
    out,
    curves,
  );
  await renderAdaptation(main);
  await renderStudies(main);
}

/**
 * Adaptation methods on one target: the graft adapt runs of a target, each (method, seed) with its validator
 * scores, target accuracy when labelled target data was given, and the pick of --method auto with its reason.
 */
async function renderAdaptation(main: HTMLElement): Promise<void> {
  const groups = await api<{ target: string; runs: string[] }[]>('/api/adapt');
  if (!groups.length) return;
  const view = h('div', { id: 'adapt' });
  const pick = h(
    'select',
    { id: 'adapt-target', onchange: () => show(groups[Number(pick.value)]!.runs) },
    ...groups.map((g, i) => h('option', { value: String(i) }, `${g.target} (${g.runs.length} run${g.runs.length > 1 ? 's' : ''})`)),
  );
  const show = async (names: string[]) => {
    try {
      const c = await api<AdaptComparison>('/api/adapt', { query: { runs: names.join(',') } });
      const several = c.runs.length > 1;
      const acc = c.candidates.some((x) => x.target_acc !== undefined);
      const picks = c.runs.map((r) =>
        h(
          'p',
          { class: 'adapt-pick', 'data-run': r.name },
          h('b', {}, r.name),
          `: ${r.source} → ${r.target}${r.targetEval ? ` (target accuracy on ${r.targetEval})` : ''}. `,
          r.auto ? r.auto.reason : `No pick: --compare ran ${r.methods.join(', ')}; each run's checkpoint picked by ${r.selectBy}.`,
          ...(r.models.includes('model.onnx')
            ? [' ', h('a', { href: url(`/api/runs/${encodeURIComponent(r.name)}/files/onnx`), download: '', 'data-kind': 'onnx' }, 'model.onnx')]
            : []),
        ),
      );
      const head = [...(several ? ['run'] : []), 'method', 'seed', 'SND', 'target entropy', 'IM', ...(acc ? ['target acc'] : []), 'source val acc', ''];
      const table = h(
        'table',
        { id: 'adapt-methods' },
        h('tr', {}, ...head.map((t) => h('th', {}, t))),
        ...c.candidates.map((x) =>
          h(
            'tr',
            { 'data-method': x.method, 'data-picked': String(x.picked) },
            ...(several ? [h('td', {}, x.run)] : []),
            h('td', {}, x.method),
            h('td', {}, String(x.seed)),
            h('td', {}, num(x.snd)),
            h('td', {}, num(x.target_entropy)),
            h('td', {}, num(x.target_im)),
            ...(acc ? [h('td', {}, pct(x.target_acc))] : []),
            h('td', {}, pct(x.source_val_acc)),
            h('td', {}, x.picked ? 'pick' : ''),
          ),
        ),
      );
      const bars = h('div', { id: 'adapt-chart' });
      fill(view, ...picks, table, bars);
      await chart(bars, c.chart);
    } catch (e) {
      status((e as Error).message, true);
    }
  };
  main.append(
    h(
      'section',
      { id: 'adapt-section' },
      h('h2', {}, 'Adaptation methods'),
      h('p', { class: 'hint' }, 'graft adapt runs in the runs folder (graft adapt --out <runs>/<name>), those of one target side by side.'),
      h('label', {}, 'Target ', pick),
      view,
    ),
  );
  await show(groups[0]!.runs);
}

/** Tune studies: trials (pruned included), the best, the best-so-far curve and the parameters in parallel coordinates. */
async function renderStudies(main: HTMLElement): Promise<void> {
  const files = await api<string[]>('/api/studies');
  if (!files.length) return;
  const view = h('div', { id: 'study' });
  const pick = h('select', { id: 'study-pick', onchange: () => show(pick.value) }, ...files.map((f) => h('option', { value: f }, f)));
  const show = async (file: string) => {
    try {
      const v = await api<StudyView>('/api/studies', { query: { file } });
      const s = v.summary;
      const best = h(
        'p',
        { id: 'study-best' },
        s.best ? `best: trial ${s.best.trial}, ${s.metric} ${s.best.value.toFixed(4)} (${JSON.stringify(s.best.params)})` : 'no complete trial yet',
      );
      const counts = h(
        'p',
        {},
        Object.entries(s.counts)
          .map(([k, n]) => `${n} ${k}`)
          .join(', '),
      );
      const [a, b] = [h('div', { id: 'study-best-so-far' }), h('div', { id: 'study-parallel' })];
      const keys = [...new Set(s.trials.flatMap((t) => Object.keys(t.params)))];
      const table = h(
        'table',
        { id: 'study-trials' },
        h('tr', {}, h('th', {}, 'trial'), h('th', {}, 'state'), h('th', {}, s.metric), h('th', {}, 'epochs'), ...keys.map((k) => h('th', {}, k))),
        ...s.trials.map((t) =>
          h(
            'tr',
            { 'data-state': t.state },
            h('td', {}, String(t.trial)),
            h('td', {}, t.state),
            h('td', {}, t.value?.toFixed(4) ?? '–'),
            h('td', {}, String(t.epochs)),
            ...keys.map((k) => h('td', {}, JSON.stringify(t.params[k]))),
          ),
        ),
      );
      fill(view, counts, best, h('div', { class: 'row' }, a, b), table);
      await chart(a, v.charts.bestSoFar);
      if (v.charts.parallel) await chart(b, v.charts.parallel);
    } catch (e) {
      status((e as Error).message, true);
    }
  };
  main.append(h('section', {}, h('h2', {}, 'Tune studies'), h('label', {}, 'Study ', pick), view));
  await show(files[0]!);
}
