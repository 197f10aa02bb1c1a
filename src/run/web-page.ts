/** The demo page of a web bundle (index.html): pick or drop images (or type texts), see the top classes with their probabilities. */
import type { WebBundleMeta, WebTextBundleMeta } from '../web/index.js';

const escapeHtml = (s: string) => s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

/** What differs between the image and the text page; the rest of index.html is {@link page}'s. */
interface PageParts {
  meta: WebBundleMeta | WebTextBundleMeta;
  /** The page title before the model's name: "graft classifier" / "graft text classifier". */
  title: string;
  /** "Image classifier" / "Text classifier". */
  heading: string;
  /** What never leaves the browser: "images" / "texts". */
  inputs: string;
  /** The page's own CSS rules, after the shared ones. */
  style: string;
  /** The input controls, between the status line and the results. */
  controls: string;
  /** The classifier class exported by ./graft/web/index.js. */
  classifier: 'WebClassifier' | 'WebTextClassifier';
  /** The page's own script, after the shared one (which defines K, status, results, clf and showTop). */
  script: string;
}

/**
 * index.html: the shared head, styles and the script that loads the classifier and draws one result's top
 * classes (`showTop(r, into)`: a table of label, probability and a bar, then the "unknown" note), around a page's own
 * controls and script.
 */
function page(p: PageParts): string {
  const { labels } = p.meta;
  const k = Math.min(5, labels.length);
  const classes = labels.length <= 12 ? labels.join(', ') : `${labels.slice(0, 12).join(', ')}, … (${labels.length} classes)`;
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${p.title}: ${escapeHtml(p.meta.source?.model ?? 'model')}</title>
<style>
  body { font: 15px/1.4 system-ui, sans-serif; margin: 2rem auto; max-width: 52rem; padding: 0 1rem; color: #222; }
  #results { display: flex; flex-direction: column; gap: 1rem; margin-top: 1.5rem; }
  table { border-collapse: collapse; } td { padding: 0.1rem 0.6rem; } td.p { text-align: right; font-variant-numeric: tabular-nums; }
  .bar { background: #2a7; height: 0.6rem; border-radius: 3px; }
  .unknown { color: #a40; font-weight: bold; }
  .error { color: #b00; }
${p.style}
</style>
</head>
<body>
<h1>${p.heading}</h1>
<p>Classes: ${escapeHtml(classes)}. Runs in this page on onnxruntime-web (wasm); ${p.inputs} never leave the browser.</p>
<p id="status">Loading the model…</p>
${p.controls}
<div id="results"></div>
<script type="module">
import { ${p.classifier} } from './graft/web/index.js';

const K = ${k};
const status = document.getElementById('status');
const results = document.getElementById('results');
let clf;
try {
  clf = await ${p.classifier}.load(new URL('./', location.href));
  status.textContent = 'Ready.';
  document.body.dataset.ready = 'true';
} catch (e) {
  status.textContent = e.message;
  status.className = 'error';
  document.body.dataset.error = e.message;
}

function showTop(r, into) {
  const table = document.createElement('table');
  for (const t of r.top) {
    const tr = table.insertRow();
    tr.insertCell().textContent = t.label;
    const p = tr.insertCell();
    p.className = 'p';
    p.textContent = t.probability.toFixed(4);
    const bar = document.createElement('div');
    bar.className = 'bar';
    bar.style.width = (100 * t.probability).toFixed(1) + 'px';
    tr.insertCell().append(bar);
  }
  into.append(table);
  if (r.unknown) {
    const u = document.createElement('p');
    u.className = 'unknown';
    u.textContent = 'unknown (top probability below ' + clf.meta.threshold + ')';
    into.append(u);
  }
}
${p.script}
</script>
</body>
</html>
`;
}

/** index.html for a bundle with `meta`; it loads ./graft/web/index.js and classifies in the page. */
export function demoPage(meta: WebBundleMeta): string {
  return page({
    meta,
    title: 'graft classifier',
    heading: 'Image classifier',
    inputs: 'images',
    classifier: 'WebClassifier',
    style: `  #drop { display: block; border: 2px dashed #999; border-radius: 8px; padding: 2rem; text-align: center; cursor: pointer; }
  #drop.over { border-color: #2a7; background: #efe; }
  figure { display: flex; gap: 1rem; margin: 0; align-items: flex-start; }
  figure img { max-width: 160px; max-height: 160px; border-radius: 4px; }`,
    controls: '<label id="drop">Drop images here, or pick them: <input type="file" id="file" accept="image/*" multiple></label>',
    script: `const drop = document.getElementById('drop');

async function classify(files) {
  for (const file of files) {
    const fig = document.createElement('figure');
    fig.dataset.name = file.name;
    const img = document.createElement('img');
    img.src = URL.createObjectURL(file);
    img.alt = file.name;
    const body = document.createElement('div');
    const title = document.createElement('strong');
    title.textContent = file.name;
    body.append(title);
    fig.append(img, body);
    try {
      const r = await clf.classifyBlob(file, K);
      showTop(r, body);
      fig.dataset.top = r.top[0].label;
      fig.dataset.probabilities = JSON.stringify(Array.from(r.probabilities));
    } catch (e) {
      const p = document.createElement('p');
      p.className = 'error';
      p.textContent = e.message;
      body.append(p);
      fig.dataset.error = e.message;
    }
    results.append(fig);
  }
}

document.getElementById('file').addEventListener('change', (ev) => { if (clf) classify([...ev.target.files]); });
drop.addEventListener('dragover', (ev) => { ev.preventDefault(); drop.classList.add('over'); });
drop.addEventListener('dragleave', () => drop.classList.remove('over'));
drop.addEventListener('drop', (ev) => { ev.preventDefault(); drop.classList.remove('over'); if (clf) classify([...ev.dataTransfer.files]); });`,
  });
}

/** index.html for a text bundle: type texts (one per line), see each one's top classes; loads ./graft/web/index.js. */
export function textDemoPage(meta: WebTextBundleMeta): string {
  return page({
    meta,
    title: 'graft text classifier',
    heading: 'Text classifier',
    inputs: 'texts',
    classifier: 'WebTextClassifier',
    style: '  textarea { width: 100%; min-height: 6rem; font: inherit; }',
    controls: `<label for="texts">Texts, one per line:</label>
<textarea id="texts"></textarea>
<button id="go" disabled>Classify</button>`,
    script: `const go = document.getElementById('go');
if (clf) go.disabled = false;

go.addEventListener('click', async () => {
  const texts = document.getElementById('texts').value.split('\\n').filter((t) => t.trim());
  results.replaceChildren();
  let rows;
  try {
    rows = await clf.classifyTexts(texts, K);
  } catch (e) {
    status.textContent = e.message;
    status.className = 'error';
    return;
  }
  rows.forEach((r, i) => {
    const div = document.createElement('div');
    div.className = 'result';
    const title = document.createElement('strong');
    title.textContent = texts[i];
    div.append(title);
    showTop(r, div);
    div.dataset.top = r.top[0].label;
    div.dataset.probabilities = JSON.stringify(Array.from(r.probabilities));
    results.append(div);
  });
});`,
  });
}
