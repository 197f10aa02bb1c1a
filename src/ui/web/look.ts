/**
 * The Look tab, for a finished run: summary numbers, the confusion matrix (a click on a cell opens its
 * misclassified images), per-class P/R/F1, the reliability diagram, the most-confused pairs, misclassified images
 * by loss, a try-it panel (upload, drop or webcam → top-k), and the downloads.
 */

import type { RunResults } from '../../run/results.js';
import type { ImageClass } from '../../train/classify.js';
import type { ListedRun } from '../api-types.js';
import { api, imageUrl, url } from './api.js';
import { chart, fill, h, num, pct, status } from './dom.js';
import { tryPanel } from './try.js';

export async function renderLook(main: HTMLElement, runName?: string): Promise<void> {
  // finished training runs (a graft adapt run keeps no validation predictions; the Compare tab shows it)
  const runs = (await api<ListedRun[]>('/api/runs')).filter((r) => r.state === 'finished' && r.kind === 'train');
  if (!runs.length) {
    main.append(h('p', {}, 'No finished run yet: train one in the Train tab.'));
    return;
  }
  const name = runName ?? runs[0]!.name;
  const pick = h(
    'select',
    { id: 'look-run', onchange: () => renderAgain(pick.value) },
    ...runs.map((r) => h('option', { value: r.name, selected: r.name === name }, r.name)),
  );
  const renderAgain = (n: string) => {
    main.replaceChildren();
    void renderLook(main, n).catch((e) => status((e as Error).message, true));
  };
  main.append(h('section', {}, h('h2', {}, 'Look'), h('label', {}, 'Run ', pick)));
  const r = await api<RunResults>(`/api/runs/${encodeURIComponent(name)}/results`);
  const cell = h('div', { id: 'cell-images' });
  const confusion = h('div', { id: 'confusion' });
  const reliability = h('div', { id: 'reliability' });
  const curves = h('div', { id: 'curves' });
  main.append(
    h(
      'p',
      { id: 'look-summary', class: 'summary' },
      `${r.n} validation images · accuracy ${pct(r.accuracy)} · macro F1 ${num(r.macro.f1)} · NLL ${num(r.nll)} · ECE ${pct(r.ece)}`,
    ),
    exports(name, r),
    h(
      'div',
      { class: 'row' },
      h('section', {}, h('h3', {}, 'Confusion matrix'), h('p', { class: 'hint' }, 'Click a cell to see its images.'), confusion, cell),
      h('section', {}, h('h3', {}, 'Per class'), perClass(r)),
    ),
    h('div', { class: 'row' }, h('section', {}, h('h3', {}, 'Reliability'), reliability), h('section', {}, h('h3', {}, 'Most confused'), pairs(r))),
    h('section', {}, h('h3', {}, 'Misclassified, highest loss first'), gallery(r.mistakes.slice(0, 48), 'mistakes')),
    tryPanel(name, (row: ImageClass) => row),
    h('section', {}, curves),
  );
  const view = await chart(confusion, r.charts.confusion);
  view.addEventListener('click', (_ev, item) => {
    const d = (item as { datum?: { true?: string; predicted?: string } } | null)?.datum;
    if (!d?.true || !d.predicted) return;
    const images = r.mistakes.filter((m) => m.label === d.true && m.pred === d.predicted);
    cell.dataset.cell = `${d.true}→${d.predicted}`;
    fill(
      cell,
      h('h4', {}, `true ${d.true}, predicted ${d.predicted}: ${d.true === d.predicted ? 'correct predictions are not listed' : `${images.length} image(s)`}`),
      gallery(images, 'cell'),
    );
  });
  await chart(reliability, r.charts.reliability);
  await chart(curves, r.charts.curves);
}

function exports(name: string, r: RunResults): HTMLElement {
  const label = { onnx: 'model.onnx', sidecar: 'model.json (sidecar)', report: 'report.html', web: 'web page (.zip, runs in a browser)' } as const;
  return h(
    'p',
    { id: 'exports' },
    'Download: ',
    ...(Object.keys(r.files) as (keyof typeof label)[]).map((k) =>
      h('a', { href: url(`/api/runs/${encodeURIComponent(name)}/files/${k}`), download: '', 'data-kind': k }, label[k]),
    ),
  );
}

function perClass(r: RunResults): HTMLElement {
  return h(
    'table',
    { id: 'per-class' },
    h('tr', {}, h('th', {}, 'class'), h('th', {}, 'precision'), h('th', {}, 'recall'), h('th', {}, 'F1'), h('th', {}, 'support')),
    ...r.perClass.map((c) =>
      h('tr', {}, h('td', {}, c.label), h('td', {}, num(c.precision)), h('td', {}, num(c.recall)), h('td', {}, num(c.f1)), h('td', {}, String(c.support))),
    ),
  );
}

function pairs(r: RunResults): HTMLElement {
  if (!r.confusedPairs.length) return h('p', { id: 'pairs' }, 'No mistakes on the validation images.');
  return h('ol', { id: 'pairs' }, ...r.confusedPairs.slice(0, 10).map((p) => h('li', {}, `${p.label} → ${p.pred}: ${p.count}`)));
}

function gallery(items: RunResults['mistakes'], id: string): HTMLElement {
  if (!items.length) return h('p', { class: 'gallery', id }, 'None.');
  return h(
    'div',
    { class: 'gallery', id },
    ...items.map((m) =>
      h(
        'figure',
        {},
        h('img', { src: imageUrl(m.path, 96), alt: m.path, title: m.path }),
        h('figcaption', {}, `${m.label} → ${m.pred} (${pct(m.p)}, loss ${m.loss.toFixed(2)})`),
      ),
    ),
  );
}
