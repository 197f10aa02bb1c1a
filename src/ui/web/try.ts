/** The try-it panel: an image from a file, a drop or the webcam, classified by the run's model (top-k). */
import type { ImageClass } from '../../train/classify.js';
import { url } from './api.js';
import { fill, h, pct } from './dom.js';

/** The panel for the run `name`. */
export function tryPanel(name: string, _show: (row: ImageClass) => unknown): HTMLElement {
  const result = h('div', { id: 'try-result' });
  const preview = h('img', { id: 'try-preview', alt: '' });
  const classify = async (blob: Blob, filename: string) => {
    preview.src = URL.createObjectURL(blob);
    fill(result, 'classifying…');
    const form = new FormData();
    form.append('image', blob, filename);
    const res = await fetch(url(`/api/runs/${encodeURIComponent(name)}/try`), { method: 'POST', body: form });
    const body = await res.json();
    if (!res.ok) return fill(result, h('p', { class: 'error' }, body.error));
    const row = body as ImageClass;
    fill(
      result,
      h('p', { class: 'top' }, `${row.label} (${pct(row.p)})`),
      h('ol', {}, ...row.top.map((t) => h('li', {}, h('span', {}, t.label), h('meter', { min: 0, max: 1, value: t.p }), ` ${pct(t.p)}`))),
    );
  };
  const file = h('input', {
    id: 'try-file',
    type: 'file',
    accept: 'image/*',
    onchange: () => {
      const f = file.files?.[0];
      if (f) void classify(f, f.name);
    },
  });
  const drop = h('div', { id: 'try-drop', class: 'drop' }, 'Drop an image here, choose a file, or use the webcam.');
  drop.addEventListener('dragover', (e) => e.preventDefault());
  drop.addEventListener('drop', (e) => {
    e.preventDefault();
    const f = e.dataTransfer?.files[0];
    if (f) void classify(f, f.name);
  });
  const video = h('video', { id: 'try-video', autoplay: true, playsInline: true, muted: true, hidden: true });
  const webcam = h(
    'button',
    {
      id: 'try-webcam',
      onclick: async () => {
        if (video.srcObject) {
          const c = h('canvas', { width: video.videoWidth, height: video.videoHeight });
          c.getContext('2d')!.drawImage(video, 0, 0);
          c.toBlob((b) => b && void classify(b, 'webcam.png'), 'image/png');
          return;
        }
        try {
          video.srcObject = await navigator.mediaDevices.getUserMedia({ video: true });
          video.hidden = false;
          webcam.textContent = 'Snap';
        } catch (e) {
          fill(result, h('p', { class: 'error' }, `No webcam: ${(e as Error).message}`));
        }
      },
    },
    'Webcam',
  );
  return h('section', { id: 'try' }, h('h3', {}, 'Try it'), drop, file, webcam, video, h('div', { class: 'row' }, preview, result));
}
