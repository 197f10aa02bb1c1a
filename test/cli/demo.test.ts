/** `graft demo` (the README's main-job command) on a small budget, through the CLI as a user runs it. */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import * as ort from 'onnxruntime-node';
import { formatTable } from '../../src/cli/commands/demo.js';

const bin = fileURLToPath(new URL('../../bin/graft.js', import.meta.url));

test('graft demo (quick budget) pretrains, transfers, reports every setting and writes a loadable model', async () => {
  const out = fs.mkdtempSync(path.join(os.tmpdir(), 'graft-demo-'));
  const r = spawnSync(
    process.execPath,
    [bin, '--json', 'demo', '--source-samples', '3000', '--pretrain-epochs', '1', '--steps', '30', '--adapt-steps', '15', '--out', out],
    {
      encoding: 'utf8',
      env: { ...process.env, GRAFT_FROM_SOURCE: '1', NODE_OPTIONS: '' },
      timeout: 240_000,
    },
  );
  assert.equal(r.status, 0, r.stderr);
  const doc = JSON.parse(r.stdout);
  // each summary row is the mean ± sample std of the per-seed rows (percentages, as the report prints them)
  assert.deepEqual(
    doc.results.map((r: { seed: number }) => r.seed),
    doc.seeds,
  );
  for (const k of ['source_test', 'source_model', 'adabn', 'linear', 'finetune', 'scratch', 'mcc']) {
    const v: number[] = doc.results.map((r: { acc: Record<string, number> }) => r.acc[k]);
    const mean = v.reduce((a, b) => a + b, 0) / v.length;
    const std = v.length > 1 ? Math.sqrt(v.reduce((a, b) => a + (b - mean) ** 2, 0) / (v.length - 1)) : 0;
    assert.ok(Math.abs(doc.summary[k].mean - mean) < 1e-9 && Math.abs(doc.summary[k].std - std) < 1e-9, `${k}: ${JSON.stringify(doc.summary[k])} vs rows ${v}`);
  }
  // the saved model's sidecar records the accuracies of the seed it comes from
  assert.deepEqual(JSON.parse(fs.readFileSync(path.join(out, 'model.json'), 'utf8')).accuracy, doc.results[0].acc);
  // every phase shows progress, the few-shot ones included (JSON lines on stderr off a terminal)
  const finals = r.stderr
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l))
    .filter((l) => l.event === 'progress' && l.final)
    .map((l) => String(l.label));
  for (const phase of ['few-shot: linear probe', 'few-shot: fine-tune', 'few-shot: from scratch'])
    assert.ok(
      finals.some((l) => l.startsWith(phase)),
      `${phase} shows progress; final progress lines: ${finals.join(', ')}`,
    );
  // even on 3,000 source images the pretrained backbone must be far above chance on MNIST
  assert.ok(doc.summary.source_test.mean > 70, `source test accuracy ${doc.summary.source_test.mean}`);
  for (const f of ['model.onnx', 'model.json', 'results.json', 'report.md']) assert.ok(fs.existsSync(path.join(out, f)), f);
  const s = await ort.InferenceSession.create(path.join(out, 'model.onnx'));
  const y = await s.run({ [s.inputNames[0]!]: new ort.Tensor('float32', new Float32Array(2 * 784), [2, 1, 28, 28]) });
  assert.deepEqual(y.probabilities!.dims, [2, 10]);
  // the human report ends with the no-target-labels verdict (MCC vs fine-tuning with labels)
  const report = fs.readFileSync(path.join(out, 'report.md'), 'utf8').trim().split('\n');
  const { mcc, finetune } = doc.summary;
  assert.equal(
    report.at(-1),
    `with no target labels at all, MCC adaptation reaches ${mcc.mean.toFixed(1)}% — ${mcc.mean >= finetune.mean ? 'above' : 'below'} fine-tuning with 10 labels per class (${finetune.mean.toFixed(1)}%).`,
  );
  fs.rmSync(out, { recursive: true, force: true });
});

test('graft demo refuses a negative --adapt-steps with a clear message', () => {
  const bad = spawnSync(process.execPath, [bin, 'demo', '--adapt-steps', '-3'], {
    encoding: 'utf8',
    env: { ...process.env, GRAFT_FROM_SOURCE: '1', NODE_OPTIONS: '' },
  });
  assert.notEqual(bad.status, 0);
  assert.match(bad.stderr, /--adapt-steps must be a whole number ≥ 0/);
});

test('the demo report keeps the source-test accuracy out of the target table and explains AdaBN below the unadapted model', () => {
  const one = (mean: number) => ({ mean, std: 0 });
  const summary = { source_test: one(98.9), source_model: one(45.0), adabn: one(42.8), linear: one(65.4), finetune: one(68.6), scratch: one(55.3) };
  const lines = formatTable('style-shift', 10, [0], summary, { pretrain: 1 }, 2);
  const table = lines.filter((l) => l.startsWith('|'));
  assert.match(table[0]!, /evaluated on the target test set/);
  assert.ok(!table.some((l) => l.includes('98.9')), `no source-test row in the target table:\n${table.join('\n')}`);
  assert.ok(lines.some((l) => /source model on the source test set \(MNIST\): 98\.9%/.test(l)));
  assert.ok(lines.some((l) => /^AdaBN is below the unadapted model here \(42\.8 vs 45\.0\)/.test(l)));
  // no note when AdaBN helps
  const better = formatTable('style-shift', 10, [0], { ...summary, adabn: one(50) }, { pretrain: 1 }, 2);
  assert.ok(!better.some((l) => l.startsWith('AdaBN is below')));
});
