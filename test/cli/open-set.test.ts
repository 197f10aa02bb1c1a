/**
 * Open-set prediction and calibrated probabilities through the CLI (issue 14): `--threshold` labels
 * low-confidence images "unknown" in predict and counts them in eval; a sidecar `temperature` divides the
 * logits in predict and in the exported "probabilities"; eval's report.html opens the misclassified images
 * of a confusion cell, has a legend and the preprocessing recipe.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import sharp from 'sharp';
import { parsePreprocessConfig } from '../../src/data/preprocess.js';
import { flatten, globalAvgPool, linear, sequential } from '../../src/nn/index.js';
import { ort } from '../../src/runtime/session.js';
import { Tensor } from '../../src/tensor.js';
import { Network } from '../../src/train/network.js';
import { type CliRun, runGraft } from '../cli-run.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'graft-open-'));
after(() => fs.rmSync(tmp, { recursive: true, force: true }));
const graft = (args: string[]): Promise<CliRun> => runGraft(args, tmp, { GRAFT_THREADS: '1' });

const LABELS = ['red', 'green', 'blue'];
const model = (t?: number) => path.join(tmp, t ? `model-t${t}` : 'model', 'model.onnx');

/** logits = 10 · mean(R, G, B) (values in 0..1): a pure colour is sure, purple is torn between red and blue. */
function saveColourModel(file: string, temperature?: number): void {
  const m = sequential(globalAvgPool(), flatten(), linear(3, 3)).build({ inputShape: ['N', 3, 16, 16], seed: 0 });
  const [w, b] = [...m.graph.initializers.keys()].sort((x, y) => y.length - x.length || x.localeCompare(y));
  m.graph.initializers.set(w!, Tensor.f32([3, 3], [10, 0, 0, 0, 10, 0, 0, 0, 10]));
  m.graph.initializers.set(b!, Tensor.f32([3], [0, 0, 0]));
  const net = new Network(m, { labels: LABELS, preprocess: parsePreprocessConfig({ size: 16, channels: 3, resize: 'stretch' }), temperature });
  net.save(file);
}

async function png(file: string, rgb: [number, number, number]): Promise<void> {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  await sharp({ create: { width: 16, height: 16, channels: 3, background: { r: rgb[0], g: rgb[1], b: rgb[2] } } })
    .png()
    .toFile(file);
}

before(async () => {
  saveColourModel(model());
  saveColourModel(model(2), 2);
  await png(path.join(tmp, 'data', 'red', 'a.png'), [230, 20, 20]);
  await png(path.join(tmp, 'data', 'red', 'purple.png'), [150, 20, 160]); // labelled red, predicted blue at p ≈ 0.6
  await png(path.join(tmp, 'data', 'green', 'a.png'), [20, 230, 20]);
  await png(path.join(tmp, 'data', 'blue', 'a.png'), [20, 20, 230]);
});

test('graft predict --threshold labels low-confidence images "unknown" (table, JSON); a bad threshold is one clear error', async () => {
  const imgs = ['data/red/a.png', 'data/red/purple.png'];
  const [json, table, bad] = await Promise.all([
    graft(['--json', 'predict', model(), ...imgs, '--threshold', '0.9']),
    graft(['predict', model(), ...imgs, '--threshold', '0.9', '-k', '1']),
    graft(['predict', model(), ...imgs, '--threshold', '1.5']),
  ]);
  assert.equal(json.code, 0, json.stderr);
  const r = JSON.parse(json.stdout);
  assert.equal(r.threshold, 0.9);
  assert.equal(r.unknown, 1);
  assert.equal(r.results[0].label, 'red');
  assert.equal(r.results[0].unknown, undefined);
  assert.equal(r.results[1].label, 'unknown');
  assert.equal(r.results[1].unknown, true);
  assert.equal(r.results[1].top[0].label, 'blue', 'the top-k list is still there');
  assert.ok(r.results[1].top[0].probability < 0.9);
  assert.equal(table.code, 0, table.stderr);
  assert.match(table.stdout, /^file\s+label\s+top-1\s+p$/m);
  assert.match(table.stdout, /purple\.png\s+unknown\s+blue\s+0\.\d+/);
  assert.match(table.stdout, /1 of 2 image\(s\) labelled unknown/);
  assert.equal(bad.code, 1);
  assert.match(bad.stderr, /--threshold must be a probability between 0 and 1/);
});

test('a sidecar temperature divides the logits: predict and the exported "probabilities" give softmax(logits / T)', async () => {
  const [plain, cooled] = await Promise.all([
    graft(['--json', 'predict', model(), 'data/red/purple.png', '-k', '3']),
    graft(['--json', 'predict', model(2), 'data/red/purple.png', '-k', '3']),
  ]);
  assert.equal(cooled.code, 0, cooled.stderr);
  const p1 = JSON.parse(plain.stdout).results[0].top as { index: number; probability: number }[];
  const p2 = JSON.parse(cooled.stdout).results[0].top as { index: number; probability: number }[];
  assert.equal(p1[0]!.index, p2[0]!.index, 'same top-1');
  // softmax(z / 2) from softmax(z): p_i^(1/2) renormalised
  const byIndex = (p: typeof p1) => [0, 1, 2].map((i) => p.find((t) => t.index === i)!.probability);
  const root = byIndex(p1).map(Math.sqrt);
  const want = root.map((v) => v / root.reduce((a, b) => a + b, 0));
  for (const [i, v] of byIndex(p2).entries()) assert.ok(Math.abs(v - want[i]!) < 1e-4, `class ${i}: ${v} vs ${want[i]}`);
  assert.equal(JSON.parse(fs.readFileSync(model(2).replace(/onnx$/, 'json'), 'utf8')).temperature, 2);
  // the exported graph's probabilities output is calibrated too
  const s = await ort.InferenceSession.create(model(2));
  const x = new Float32Array(3 * 16 * 16).fill(0.5);
  const out = await s.run({ [s.inputNames[0]!]: new ort.Tensor('float32', x, [1, 3, 16, 16]) }, ['probabilities', 'logits']);
  const z = out.logits!.data as Float32Array;
  const e = [...z].map((v) => Math.exp(v / 2));
  for (const [i, v] of (out.probabilities!.data as Float32Array).entries()) assert.ok(Math.abs(v - e[i]! / e.reduce((a, b) => a + b, 0)) < 1e-5);
  await s.release();
});

test('graft eval --threshold reports unknowns, coverage and covered accuracy; report.html opens the misclassified images of a cell', async () => {
  const out = path.join(tmp, 'eval-out');
  const [text, json] = await Promise.all([
    graft(['eval', model(), '--data', 'data', '--threshold', '0.9', '--out', out]),
    graft(['--json', 'eval', model(), '--data', 'data', '--threshold', '0.9']),
  ]);
  assert.equal(text.code, 0, text.stderr);
  assert.match(text.stdout, /unknown\s+1 of 4 \(top probability below 0\.9\)/);
  assert.match(text.stdout, /coverage\s+75\.00%/);
  assert.match(text.stdout, /covered acc\s+100\.00%/);
  assert.match(text.stdout, /accuracy\s+75\.00%/);
  assert.doesNotMatch(text.stdout, /top-\d accuracy/, '3 classes: no top-5 (clamped to top-3) line');
  const j = JSON.parse(json.stdout);
  assert.deepEqual(j.open, { threshold: 0.9, unknown: 1, coverage: 0.75, coveredAccuracy: 1 });
  const html = fs.readFileSync(path.join(out, 'report.html'), 'utf8');
  // the red → blue cell (rows and columns in the model's label order: red 0, green 1, blue 2) links to its images
  assert.match(html, /<a href="#cell-0-2">1<\/a>/);
  assert.match(
    html,
    /<section class="cell" id="cell-0-2"><h3>red predicted as blue \(1\)<\/h3><figure><img src="data:image\/jpeg;base64,[A-Za-z0-9+/=]+" alt="[^"]*purple\.png"/,
  );
  assert.match(html, /section\.cell:target \{ display: block; \}/);
  assert.ok(html.includes('perfect calibration') && html.includes('gap to confidence'), 'the reliability diagram has a legend');
  assert.match(html, /<pre class="recipe"><code>[\s\S]*img\.resize\(\(16, 16\)[\s\S]*<\/code><\/pre>/);
  assert.match(html, /unknown \(top p &lt; 0\.9\)/);
  assert.doesNotMatch(html, /top-\d accuracy/);
  assert.ok(!/<script|https?:\/\/(?!www\.w3\.org)/.test(html), 'self-contained');
});
