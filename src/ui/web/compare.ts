/** The Compare tab: pick runs, see the config keys that differ and their curves overlaid; and tune studies. */
import type { RunComparison } from '../../run/runs.js';
import type { StudyView } from '../../tune/charts.js';
import { api } from './api.js';
import { chart, fill, h, status } from './dom.js';

export async function renderCompare(main: HTMLElement): Promise<void> {
  const runs = await api<{ name: string; state: string }[]>('/api/runs');
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
  await renderStudies(main);
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
