/** The Compare tab: pick runs, see the config keys that differ and their curves overlaid. */
import type { RunComparison } from '../../run/runs.js';
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
}
