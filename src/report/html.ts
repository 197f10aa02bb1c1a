/**
 * The self-contained HTML report of `graft train` and `graft eval`: summary numbers, training curves, the
 * restored epoch, per-class table, confusion matrix (inline SVG plus a table whose off-diagonal cells open the
 * misclassified images, as inline thumbnails), reliability diagram, the exact preprocessing as code, and skipped
 * files. One file, no scripts, no external resources.
 */

/** What the HTML report shows (a subset of `eval.json`). */
export interface HtmlReportInput {
  title?: string;
  model: string;
  data: string;
  n: number;
  accuracy: number;
  /** Top-k accuracy; shown only when k is below the number of classes. */
  topK: { k: number; accuracy: number };
  nll: number;
  ece: number;
  macro: { precision: number; recall: number; f1: number };
  weighted: { precision: number; recall: number; f1: number };
  perClass: { label: string; precision: number; recall: number; f1: number; support: number }[];
  confusion: { labels: string[]; matrix: number[][] };
  skipped: { file: string; error: string }[];
  /** Inline SVG documents (from the chart renderer). */
  confusionSvg?: string;
  reliabilitySvg?: string;
  created?: string;
  /** Loss and accuracy curves (train reports). */
  curvesSvg?: string;
  /** Which epoch each phase's early stopping restored, as lines of text. */
  restored?: string[];
  /** Misclassified images per confusion cell (indices into `confusion.labels`). */
  misclassified?: { truth: number; predicted: number; images: { file: string; p: number; src?: string }[] }[];
  /** The preprocessing to reproduce predictions outside graft: settings, then code. */
  preprocessing?: { summary: string[]; code: string };
  /** Temperature scaling fitted on the validation data. */
  calibrationFit?: { temperature: number; before: { nll: number; ece: number }; after: { nll: number; ece: number } };
  /** Open-set prediction with a threshold: rows under it are "unknown". */
  open?: { threshold: number; unknown: number; coverage: number; coveredAccuracy: number };
}

/** Escapes text for HTML element content and attribute values. */
export function escapeHtml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);
}

/**
 * An SVG made safe to inline: the XML prolog and any script or event-handler attributes removed, and its ids
 * prefixed with `prefix` so that two inlined charts cannot reference each other's gradients or clip paths.
 */
export function inlineSvg(svg: string, prefix = 'svg'): string {
  return svg
    .replace(/<\?xml[^>]*\?>/g, '')
    .replace(/<script[\s\S]*?<\/script>/gi, '')
    .replace(/\son[a-z]+="[^"]*"/gi, '')
    .replace(/\bid="([^"]+)"/g, `id="${prefix}-$1"`)
    .replace(/url\(#([^)]+)\)/g, `url(#${prefix}-$1)`)
    .replace(/href="#([^"]+)"/g, `href="#${prefix}-$1"`);
}

const pct = (x: number) => `${(x * 100).toFixed(2)}%`;
const num = (x: number) => x.toFixed(4);

function table(head: string[], rows: string[][], numericFrom = 1): string {
  const th = head.map((h, j) => `<th${j >= numericFrom ? ' class="n"' : ''}>${escapeHtml(h)}</th>`).join('');
  const trs = rows.map((r) => `<tr>${r.map((c, j) => `<td${j >= numericFrom ? ' class="n"' : ''}>${escapeHtml(c)}</td>`).join('')}</tr>`).join('\n');
  return `<table><thead><tr>${th}</tr></thead><tbody>\n${trs}\n</tbody></table>`;
}

/** The confusion matrix as a table; a cell with images links to its gallery section. */
function confusionTable(c: { labels: string[]; matrix: number[][] }, cells: Map<string, unknown>): string {
  const th = ['true \\ predicted', ...c.labels].map((h, j) => `<th${j ? ' class="n"' : ''}>${escapeHtml(h)}</th>`).join('');
  const trs = c.matrix.map((row, t) => {
    const tds = row.map((v, p) => `<td class="n">${cells.has(`${t}-${p}`) ? `<a href="#cell-${t}-${p}">${v}</a>` : v}</td>`);
    return `<tr><td>${escapeHtml(c.labels[t]!)}</td>${tds.join('')}</tr>`;
  });
  return `<table><thead><tr>${th}</tr></thead><tbody>\n${trs.join('\n')}\n</tbody></table>`;
}

/** Renders the report as one HTML document. */
export function renderHtmlReport(r: HtmlReportInput): string {
  const title = r.title ?? 'graft evaluation report';
  const summary = table(
    ['metric', 'value'],
    [
      ['images evaluated', String(r.n)],
      ['accuracy', pct(r.accuracy)],
      ...(r.topK.k < r.confusion.labels.length ? [[`top-${r.topK.k} accuracy`, pct(r.topK.accuracy)]] : []),
      ...(r.open
        ? [
            [`unknown (top p < ${r.open.threshold})`, String(r.open.unknown)],
            ['coverage', pct(r.open.coverage)],
            ['accuracy on covered', pct(r.open.coveredAccuracy)],
          ]
        : []),
      ['macro F1', num(r.macro.f1)],
      ['weighted F1', num(r.weighted.f1)],
      ['negative log-likelihood', num(r.nll)],
      ['expected calibration error', pct(r.ece)],
      ...(r.skipped.length ? [['skipped (undecodable)', String(r.skipped.length)]] : []),
    ],
  );
  const perClass = table(
    ['class', 'precision', 'recall', 'F1', 'support'],
    [
      ...r.perClass.map((c) => [c.label, num(c.precision), num(c.recall), num(c.f1), String(c.support)]),
      ['macro avg', num(r.macro.precision), num(r.macro.recall), num(r.macro.f1), String(r.n)],
      ['weighted avg', num(r.weighted.precision), num(r.weighted.recall), num(r.weighted.f1), String(r.n)],
    ],
  );
  const big = r.confusion.labels.length > 30;
  const cells = new Map((r.misclassified ?? []).map((c) => [`${c.truth}-${c.predicted}`, c]));
  const confusion = big ? `<p>${r.confusion.labels.length} classes: the full matrix is in the JSON output.</p>` : confusionTable(r.confusion, cells);
  const gallery = [...cells.values()].map((c) => {
    const imgs = c.images
      .map((im) =>
        im.src
          ? `<figure><img src="${im.src}" alt="${escapeHtml(im.file)}" title="${escapeHtml(im.file)}"><figcaption>p ${im.p.toFixed(2)}</figcaption></figure>`
          : `<figure><figcaption>${escapeHtml(im.file)} (p ${im.p.toFixed(2)})</figcaption></figure>`,
      )
      .join('');
    const name = `${escapeHtml(r.confusion.labels[c.truth]!)} predicted as ${escapeHtml(r.confusion.labels[c.predicted]!)}`;
    return `<section class="cell" id="cell-${c.truth}-${c.predicted}"><h3>${name} (${r.confusion.matrix[c.truth]![c.predicted]})</h3>${imgs}</section>`;
  });
  const curves = r.curvesSvg
    ? `<h2>Training curves</h2>\n<div class="charts">${inlineSvg(r.curvesSvg, 'curves')}</div>\n${
        r.restored?.length ? `<p class="restored">${r.restored.map(escapeHtml).join('<br>')}</p>` : ''
      }`
    : '';
  const temp = r.calibrationFit
    ? `<p>Temperature scaling: T = ${r.calibrationFit.temperature.toFixed(3)} fitted on the validation data; validation ECE ${pct(r.calibrationFit.before.ece)} → ${pct(r.calibrationFit.after.ece)}, NLL ${num(r.calibrationFit.before.nll)} → ${num(r.calibrationFit.after.nll)}. Probabilities here are the calibrated ones.</p>`
    : '';
  const prep = r.preprocessing
    ? `<h2>Preprocessing</h2>\n<p>To reproduce these predictions outside graft, prepare each image exactly like this:</p>\n<ul>${r.preprocessing.summary
        .map((l) => `<li>${escapeHtml(l)}</li>`)
        .join('')}</ul>\n<pre class="recipe"><code>${escapeHtml(r.preprocessing.code)}</code></pre>`
    : '';
  const skipped = r.skipped.length
    ? `<h2>Skipped files</h2>\n${table(
        ['file', 'error'],
        r.skipped.map((s) => [s.file, s.error]),
        2,
      )}`
    : '';
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${escapeHtml(title)}</title>
<style>
body { font: 14px/1.45 system-ui, sans-serif; margin: 2rem auto; max-width: 60rem; padding: 0 1rem; color: #222; }
h1 { font-size: 1.5rem; margin-bottom: 0.2rem; }
h2 { font-size: 1.15rem; margin-top: 2rem; border-bottom: 1px solid #ddd; }
.meta { color: #666; font-size: 0.9rem; word-break: break-all; }
table { border-collapse: collapse; margin: 0.5rem 0; }
th, td { padding: 0.2rem 0.7rem; border-bottom: 1px solid #eee; text-align: left; }
td.n, th.n { text-align: right; font-variant-numeric: tabular-nums; }
.charts { display: flex; flex-wrap: wrap; gap: 2rem; align-items: flex-start; }
.charts svg { max-width: 100%; height: auto; }
td a { color: #b00; font-weight: 600; }
section.cell { display: none; border: 1px solid #ddd; padding: 0.5rem; margin: 0.5rem 0; }
section.cell:target { display: block; }
section.cell h3 { font-size: 1rem; margin: 0 0 0.4rem; }
figure { display: inline-block; margin: 0.2rem; text-align: center; font-size: 0.75rem; }
pre.recipe { background: #f6f6f6; padding: 0.6rem; overflow-x: auto; font-size: 0.8rem; }
</style>
</head>
<body>
<h1>${escapeHtml(title)}</h1>
<p class="meta">model: ${escapeHtml(r.model)}<br>data: ${escapeHtml(r.data)}${r.created ? `<br>created: ${escapeHtml(r.created)}` : ''}</p>
<h2>Summary</h2>
${summary}
${curves}
<h2>Per class</h2>
${perClass}
<h2>Confusion matrix</h2>
<p>Rows are the true class, columns the predicted class.</p>
<div class="charts">${r.confusionSvg ? inlineSvg(r.confusionSvg, 'confusion') : ''}</div>
${confusion}
${gallery.length ? `<p>Click an off-diagonal count to see those misclassified images.</p>\n${gallery.join('\n')}` : ''}
<h2>Calibration</h2>
${temp}
<p>Expected calibration error (ECE) ${pct(r.ece)}: the mean gap, weighted by bin size, between confidence and accuracy over equal-width confidence bins. Bars on the diagonal mean well calibrated; the red bands are the gaps.</p>
<div class="charts">${r.reliabilitySvg ? inlineSvg(r.reliabilitySvg, 'reliability') : ''}</div>
${prep}
${skipped}
</body>
</html>
`;
}
