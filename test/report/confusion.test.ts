import assert from 'node:assert/strict';
import { test } from 'node:test';
import sharp from 'sharp';
import { confusionSpec, confusionText, reliabilitySpec, renderConfusion, renderReliability } from '../../src/report/confusion.js';
import { escapeHtml, inlineSvg, renderHtmlReport } from '../../src/report/html.js';
import { calibration } from '../../src/report/metrics.js';
import { renderVegaLite } from '../../src/report/plot.js';

const NAMES = ['cat', 'dog', 'hedgehog'];
const M = [
  [5, 1, 0],
  [0, 12, 2],
  [1, 0, 6],
];

test('confusionText: aligned table with class names, or top confusions for many classes', () => {
  const lines = confusionText(M, NAMES);
  assert.deepEqual(lines, [
    'true \\ predicted  cat  dog  hedgehog',
    'cat                 5    1         0',
    'dog                 0   12         2',
    'hedgehog            1    0         6',
  ]);
  const k = 40;
  const big = Array.from({ length: k }, (_, i) => Array.from({ length: k }, (_, j) => (i === j ? 10 : i === 3 && j === 7 ? 4 : 0)));
  const names = Array.from({ length: k }, (_, i) => `c${i}`);
  const top = confusionText(big, names);
  assert.match(top[0]!, /40 classes: too many for a table; the 1 most frequent confusions/);
  assert.match(top[1]!, /c3\s+→ c7 {2}4/);
  assert.throws(() => confusionText(M, ['a', 'b']), /must be 2 × 2 to match the 2 class names/);
});

test('confusion heatmap renders to SVG with the class names and to a PNG of the expected size', async () => {
  const spec = confusionSpec(M, NAMES);
  assert.equal((spec.data as { values: unknown[] }).values.length, 9);
  const chart = await renderConfusion(M, NAMES);
  for (const n of NAMES) assert.ok(chart.svg.includes(`>${n}<`), `SVG shows ${n}`);
  assert.ok(chart.svg.includes('>12<'), 'cell counts are printed');
  const w = Number(/<svg[^>]*\swidth="([\d.]+)"/.exec(chart.svg)![1]);
  const h = Number(/<svg[^>]*\sheight="([\d.]+)"/.exec(chart.svg)![1]);
  assert.ok(w > 100 && h > 100, `${w}x${h}`);
  const meta = await sharp(chart.png!).metadata();
  assert.equal(meta.format, 'png');
  assert.equal(meta.width, Math.round(w * 2), 'PNG is rendered at 2× the SVG size');
  assert.equal(meta.height, Math.round(h * 2));
  // the colour says something: the darkest cell is the dominant diagonal, not an empty one
  const svgOnly = await renderVegaLite(spec, { format: 'svg', scale: 1 });
  assert.equal(svgOnly.png, undefined);
  const one = await renderVegaLite(spec, { format: 'png', scale: 1 });
  assert.equal((await sharp(one.png!).metadata()).width, Math.round(w));
});

test('reliability diagram: bins become bars, the title carries the ECE', async () => {
  const cal = calibration({ classes: 2, probabilities: [0.9, 0.1, 0.8, 0.2, 0.6, 0.4, 0.55, 0.45] }, [0, 1, 0, 1]);
  const spec = reliabilitySpec(cal.bins, cal.ece);
  const layers = spec.layer as { data: { values: unknown[] } }[];
  assert.equal(layers[0]!.data.values.length, 3, 'only non-empty bins are drawn (0.55 and 0.6 share a bin)');
  assert.match(JSON.stringify(spec.title), new RegExp(`ECE ${(cal.ece * 100).toFixed(2)}%`));
  const chart = await renderReliability(cal.bins, cal.ece);
  assert.match(chart.svg, /confidence \(max probability\)/);
  assert.equal((await sharp(chart.png!).metadata()).format, 'png');
  await assert.rejects(renderVegaLite({ mark: 'nonsense-mark' }), /Vega-Lite could not compile a chart spec: .*Fix the spec/);
});

test('HTML report is self-contained, escapes names and keeps inlined SVG ids apart', () => {
  const svg = '<?xml version="1.0"?><svg onload="x()"><defs><linearGradient id="g0"/></defs><rect fill="url(#g0)"/><script>x()</script></svg>';
  const inl = inlineSvg(svg, 'a');
  assert.equal(inl, '<svg><defs><linearGradient id="a-g0"/></defs><rect fill="url(#a-g0)"/></svg>');
  assert.equal(escapeHtml(`<b a="1">&'`), '&lt;b a=&quot;1&quot;&gt;&amp;&#39;');
  const html = renderHtmlReport({
    model: '/m/model.onnx',
    data: '/d',
    n: 3,
    accuracy: 2 / 3,
    topK: { k: 2, accuracy: 1 },
    nll: 0.5,
    ece: 0.1,
    macro: { precision: 0.5, recall: 0.5, f1: 0.5 },
    weighted: { precision: 0.5, recall: 0.5, f1: 0.5 },
    perClass: [{ label: '<script>alert(1)</script>', precision: 1, recall: 1, f1: 1, support: 2 }],
    confusion: {
      labels: ['a', 'b'],
      matrix: [
        [2, 0],
        [1, 0],
      ],
    },
    skipped: [{ file: 'x.png', error: 'bad' }],
    confusionSvg: svg,
    reliabilitySvg: svg,
  });
  assert.ok(html.startsWith('<!doctype html>'));
  assert.ok(!html.includes('<script'), 'no scripts, names are escaped');
  assert.ok(html.includes('&lt;script&gt;alert(1)&lt;/script&gt;'));
  assert.ok(html.includes('id="confusion-g0"') && html.includes('id="reliability-g0"'));
  assert.match(html, /66\.67%/);
  assert.match(html, /Skipped files[\s\S]*x\.png/);
});
