/**
 * A small self-contained HTML evaluation report: summary numbers, per-class table, confusion matrix (inline
 * SVG plus a table), reliability diagram and skipped files. One file, no scripts, no external resources.
 */

/** What the HTML report shows (a subset of `eval.json`). */
export interface HtmlReportInput {
  title?: string;
  model: string;
  data: string;
  n: number;
  accuracy: number;
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

/** Renders the report as one HTML document. */
export function renderHtmlReport(r: HtmlReportInput): string {
  const title = r.title ?? 'graft evaluation report';
  const summary = table(
    ['metric', 'value'],
    [
      ['images evaluated', String(r.n)],
      ['accuracy', pct(r.accuracy)],
      [`top-${r.topK.k} accuracy`, pct(r.topK.accuracy)],
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
  const confusion = big
    ? `<p>${r.confusion.labels.length} classes: the full matrix is in eval.json.</p>`
    : table(
        ['true \\ predicted', ...r.confusion.labels],
        r.confusion.matrix.map((row, i) => [r.confusion.labels[i]!, ...row.map(String)]),
      );
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
</style>
</head>
<body>
<h1>${escapeHtml(title)}</h1>
<p class="meta">model: ${escapeHtml(r.model)}<br>data: ${escapeHtml(r.data)}${r.created ? `<br>created: ${escapeHtml(r.created)}` : ''}</p>
<h2>Summary</h2>
${summary}
<h2>Per class</h2>
${perClass}
<h2>Confusion matrix</h2>
<p>Rows are the true class, columns the predicted class.</p>
<div class="charts">${r.confusionSvg ? inlineSvg(r.confusionSvg, 'confusion') : ''}</div>
${confusion}
<h2>Calibration</h2>
<p>Expected calibration error (ECE) ${pct(r.ece)}: the mean gap, weighted by bin size, between confidence and accuracy over equal-width confidence bins. Bars on the diagonal mean well calibrated; the red bands are the gaps.</p>
<div class="charts">${r.reliabilitySvg ? inlineSvg(r.reliabilitySvg, 'reliability') : ''}</div>
${skipped}
</body>
</html>
`;
}
