/** The Data tab: pick an image folder, see its classes, counts, example thumbnails and graft's warnings. */
import type { DataSummary } from '../../run/data-summary.js';
import { api, imageUrl } from './api.js';
import { fill, h, status } from './dom.js';

interface Info {
  folders: string[];
}

/** The folder the Data tab looked at last (the Train form starts with it). */
export let dataFolder = '';

export async function renderData(main: HTMLElement): Promise<void> {
  const info = await api<Info>('/api/info');
  dataFolder ||= info.folders[0]!;
  const input = h('input', { id: 'data-folder', value: dataFolder, size: 60, 'aria-label': 'image folder' });
  const out = h('div', { id: 'data-summary' });
  const load = async () => {
    status('reading the folder…');
    fill(out);
    try {
      const s = await api<DataSummary>('/api/data', { query: { folder: input.value } });
      dataFolder = s.folder;
      fill(out, summary(s));
      status('');
    } catch (e) {
      status((e as Error).message, true);
    }
  };
  main.append(
    h(
      'section',
      {},
      h('h2', {}, 'Data'),
      h('p', {}, 'An image folder with one sub-folder per class.'),
      input,
      h('button', { id: 'load-data', onclick: load }, 'Load'),
    ),
    out,
  );
  await load();
}

function summary(s: DataSummary): HTMLElement {
  const total = s.classes.reduce((a, c) => a + c.count, 0);
  return h(
    'div',
    {},
    h('p', { class: 'summary' }, `${s.classes.length} classes, ${total} images (${s.split.train} train / ${s.split.val} validation)`),
    s.warnings.length ? h('ul', { id: 'data-warnings', class: 'warnings' }, ...s.warnings.map((w) => h('li', {}, w))) : h('p', { class: 'ok' }, 'No warnings.'),
    h(
      'div',
      { class: 'classes' },
      ...s.classes.map((c) =>
        h(
          'div',
          { class: 'class-card', 'data-class': c.name },
          h('h3', {}, c.name, h('span', { class: 'count' }, String(c.count))),
          h('div', { class: 'thumbs' }, ...c.examples.map((f) => h('img', { src: imageUrl(f, 72), alt: f, title: f, loading: 'lazy' }))),
        ),
      ),
    ),
  );
}
