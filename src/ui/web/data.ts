/** The Data tab: pick an image folder, see its classes, counts, example thumbnails and graft's warnings; drop images into a class. */
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
      fill(out, summary(s, load));
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

/** Sends images into a class of the folder (created if new), then reloads the look. */
async function addImages(folder: string, cls: string, files: FileList | File[], reload: () => Promise<void>): Promise<void> {
  const form = new FormData();
  for (const f of files) form.append('images', f, f.name);
  try {
    const r = await api<{ written: string[] }>('/api/data/images', { method: 'POST', body: form, query: { folder, class: cls } });
    status(`added ${r.written.length} image(s) to ${cls}`);
  } catch (e) {
    status((e as Error).message, true);
  }
  await reload();
}

/** Makes `el` take dropped image files. */
function dropTarget(el: HTMLElement, onFiles: (files: FileList) => void): HTMLElement {
  el.addEventListener('dragover', (e) => {
    e.preventDefault();
    el.classList.add('over');
  });
  el.addEventListener('dragleave', () => el.classList.remove('over'));
  el.addEventListener('drop', (e) => {
    e.preventDefault();
    el.classList.remove('over');
    if (e.dataTransfer?.files.length) onFiles(e.dataTransfer.files);
  });
  return el;
}

function summary(s: DataSummary, reload: () => Promise<void>): HTMLElement {
  const add = (cls: string) => (files: FileList) => void addImages(s.folder, cls, files, reload);
  const picker = (cls: () => string) => {
    const input = h('input', { type: 'file', accept: 'image/*', multiple: true, class: 'add-images', 'aria-label': 'add images' });
    input.addEventListener('change', () => input.files?.length && add(cls())(input.files));
    return input;
  };
  const newName = h('input', { id: 'new-class', placeholder: 'new class name', size: 16 });
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
        dropTarget(
          h(
            'div',
            { class: 'class-card', 'data-class': c.name, title: `drop images here to add them to ${c.name}` },
            h('h3', {}, c.name, h('span', { class: 'count' }, String(c.count))),
            h('div', { class: 'thumbs' }, ...c.examples.map((f) => h('img', { src: imageUrl(f, 72), alt: f, title: f, loading: 'lazy' }))),
            picker(() => c.name),
          ),
          add(c.name),
        ),
      ),
      dropTarget(
        h(
          'div',
          { class: 'class-card new' },
          h('h3', {}, 'New class'),
          newName,
          h('p', { class: 'hint' }, 'name it, then drop or choose images'),
          picker(() => newName.value),
        ),
        (files) => void addImages(s.folder, newName.value, files, reload),
      ),
    ),
  );
}
