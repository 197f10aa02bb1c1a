/**
 * The end of `graft train`, in process: the model is written before the final evaluation (so an evaluation that
 * runs out of memory cannot lose a finished training), which runs at the training batch size; and a model whose
 * final validation metrics are not finite is not kept: the run fails naming a checkpoint that exists.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, test } from 'node:test';
import sharp from 'sharp';
import { Emitter } from '../../src/ir/emit.js';
import { Graph } from '../../src/ir/graph.js';
import { Model } from '../../src/ir/model.js';
import { saveModel } from '../../src/onnx/io.js';
import { parseConfig } from '../../src/run/config.js';
import { runTraining } from '../../src/run/train.js';
import { Network } from '../../src/train/network.js';
import '../../src/ops/index.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'graft-train-final-'));
after(() => fs.rmSync(tmp, { recursive: true, force: true }));
process.env.GRAFT_THREADS = '1';

/** root/<class>/<i>.png, 16×16 noisy images of one colour per class, every channel within [lo, 255]. */
async function makeImages(root: string, perClass: number, colours: Record<string, number[]>, lo = 0): Promise<void> {
  let s = 5;
  const rnd = () => (s = (s * 1103515245 + 12345) % 2147483648) / 2147483648;
  for (const [c, rgb] of Object.entries(colours)) {
    fs.mkdirSync(path.join(root, c), { recursive: true });
    for (let i = 0; i < perClass; i++) {
      const px = Buffer.alloc(16 * 16 * 3);
      for (let p = 0; p < px.length; p++) px[p] = Math.max(lo, Math.min(255, rgb[p % 3]! + (rnd() - 0.5) * 60));
      await sharp(px, { raw: { width: 16, height: 16, channels: 3 } })
        .png()
        .toFile(path.join(root, c, `${i}.png`));
    }
  }
}

function config(raw: Record<string, unknown>) {
  return parseConfig({
    ...raw,
    run: { dir: path.join(tmp, 'runs'), seed: 1, ...(raw.run as object) },
  });
}

test('graft train writes model.onnx before the final evaluation, which runs at the training batch size (head mode: on the cached features)', async () => {
  const data = path.join(tmp, 'colours');
  await makeImages(data, 10, { red: [220, 40, 40], blue: [40, 60, 220] });
  const cfg = config({
    data: { train: data, valSplit: 0.3 },
    model: { arch: 'small-cnn', width: 4, preprocess: { size: 16 }, head: { type: 'linear' } },
    train: { mode: 'head', epochs: 2, batchSize: 6, earlyStopping: { enabled: false } },
    run: { name: 'order' },
  });
  const modelFile = path.join(tmp, 'runs', 'order', 'model.onnx');
  const evaluate = Network.prototype.evaluate;
  const seen: { batchSize: number | undefined; modelExists: boolean; head: boolean }[] = [];
  Network.prototype.evaluate = async function (this: Network, _src, batchSize) {
    seen.push({ batchSize, modelExists: fs.existsSync(modelFile), head: this.headOnly() });
    throw new Error('injected: the final evaluation ran out of memory');
  };
  try {
    await assert.rejects(runTraining(cfg, { source: 'test', defaultName: 'x' }), /injected/);
  } finally {
    Network.prototype.evaluate = evaluate;
  }
  assert.deepEqual(seen, [{ batchSize: 6, modelExists: true, head: true }]);
  assert.ok(fs.existsSync(modelFile.replace(/\.onnx$/, '.json')), 'its sidecar too');
  assert.ok(!fs.existsSync(path.join(tmp, 'runs', '.order.lock')), 'the run folder is unlocked after the failure');

  // without the injected failure the run completes and model.json gets the final metrics
  const done = await runTraining({ ...cfg, run: { ...cfg.run, name: 'order2' } }, { source: 'test', defaultName: 'x' });
  assert.ok(Number.isFinite(done.metrics.val?.loss) && Number.isFinite(done.metrics.val?.acc));
  const side = JSON.parse(fs.readFileSync(done.model.replace(/\.onnx$/, '.json'), 'utf8'));
  assert.deepEqual(side.metrics.val, done.metrics.val);
  assert.equal(side.metrics.history.length, 2);
});

/** A parameter-free backbone: features = mean over the image of log(pixel); a black pixel makes them -Infinity. */
function saveLogBackbone(file: string): string {
  const g = new Graph();
  g.inputs.push({ name: 'input', dtype: 'float32', shape: ['N', 3, 16, 16] });
  const e = new Emitter(g);
  const f = e.op('Flatten', [e.op('GlobalAveragePool', [e.op('Log', ['input'])])], { axis: 1 }, 'features');
  g.outputs = [{ name: f, dtype: 'float32', shape: ['N', 3] }];
  fs.mkdirSync(path.dirname(file), { recursive: true });
  saveModel(new Model(g), file);
  fs.writeFileSync(file.replace(/\.onnx$/, '.json'), JSON.stringify({ preprocess: { size: 16, channels: 3, resize: 'stretch' } }));
  return f;
}

test('a run whose training is finite but whose validation outputs are NaN fails and keeps no model', async () => {
  const backbone = path.join(tmp, 'log', 'backbone.onnx');
  const cut = saveLogBackbone(backbone);
  const colours = { red: [220, 40, 40], blue: [40, 60, 220] };
  await makeImages(path.join(tmp, 'log-train'), 8, colours, 30);
  await makeImages(path.join(tmp, 'log-val'), 3, { red: [40, 0, 0], blue: [0, 0, 40] }); // black pixels: log 0
  const cfg = config({
    data: { train: path.join(tmp, 'log-train'), val: path.join(tmp, 'log-val') },
    model: { backbone, cut, head: { type: 'linear' } },
    train: { mode: 'head', epochs: 2, batchSize: 4, earlyStopping: { enabled: false } },
    run: { name: 'nan-val' },
  });
  await assert.rejects(
    runTraining(cfg, { source: 'test', defaultName: 'x' }),
    /^Error: The trained model's final metrics are not finite \(val loss NaN, val acc [^)]*\): its outputs are NaN or infinite, so model\.onnx was not kept\. No checkpoint of this run has finite metrics; lower the learning rate \(--lr\) or clip gradients \(--clip-norm\) and start again with --overwrite\.$/,
  );
  const run = path.join(tmp, 'runs', 'nan-val');
  assert.ok(!fs.existsSync(path.join(run, 'model.onnx')) && !fs.existsSync(path.join(run, 'model.json')));
  const log = fs
    .readFileSync(path.join(run, 'metrics.jsonl'), 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l));
  assert.ok(
    log.every((m) => Number.isFinite(m.train_loss)),
    'training itself was finite',
  );
});

test('the last good checkpoint named is one that exists and whose metrics are finite', async () => {
  const { RunDir } = await import('../../src/train/run-dir.js');
  const { saveCheckpoint } = await import('../../src/step/checkpoint.js');
  const rd = RunDir.open(path.join(tmp, 'runs', 'good'), { resume: false, overwrite: false, config: {} });
  try {
    const dir = rd.phaseDir('head');
    const e1 = { epoch: 1, step: 3, train_loss: 0.5, val_loss: 0.4, val_acc: 0.75 };
    const e2 = { epoch: 2, step: 6, train_loss: 0.3, val_loss: null, val_acc: 0.5 };
    assert.match(rd.lastGoodCheckpoint(['head']), /^No checkpoint of this run has finite metrics/);
    saveCheckpoint(path.join(dir, 'best.ckpt'), { meta: { step: 3, history: [e1] }, tensors: new Map() });
    saveCheckpoint(path.join(dir, 'last.ckpt'), { meta: { step: 6, history: [e1, e2] }, tensors: new Map() });
    const best = path.join(dir, 'best.ckpt');
    assert.equal(rd.lastGoodCheckpoint(['head']), `The last good checkpoint is ${best} (head epoch 1: train_loss 0.5000, val_loss 0.4000, val_acc 0.7500).`);
    fs.writeFileSync(best, 'damaged');
    assert.match(rd.lastGoodCheckpoint(['head']), /^No checkpoint of this run has finite metrics/);
  } finally {
    rd.release();
  }
});

test('a finished phase keeps only final.ckpt, unless its last epoch is not finite (then best.ckpt stays the last good one) or run.keepCheckpoints', async () => {
  const { RunDir } = await import('../../src/train/run-dir.js');
  const { saveCheckpoint } = await import('../../src/step/checkpoint.js');
  const e1 = { epoch: 1, step: 3, train_loss: 0.5, val_loss: 0.4, val_acc: 0.75 };
  const e2 = { epoch: 2, step: 6, train_loss: 0.3, val_loss: Number.NaN, val_acc: 0.5 };
  const model = new Model(new Graph());
  const finish = (name: string, history: (typeof e1)[], keep = false) => {
    const rd = RunDir.open(path.join(tmp, 'runs', name), { resume: false, overwrite: false, config: { run: { keepCheckpoints: keep } } });
    try {
      const dir = rd.phaseDir('head');
      for (const f of ['best.ckpt', 'early-best.ckpt']) saveCheckpoint(path.join(dir, f), { meta: { step: 3, history: [e1] }, tensors: new Map() });
      saveCheckpoint(path.join(dir, 'last.ckpt'), { meta: { step: 6, history }, tensors: new Map() });
      rd.savePhase('head', model, [], { history, stoppedEarly: false, steps: 6 });
      return { files: fs.readdirSync(dir).sort(), good: rd.lastGoodCheckpoint(['head']) };
    } finally {
      rd.release();
    }
  };
  assert.deepEqual(finish('finite', [e1]).files, ['final.ckpt']);
  const sick = finish('not-finite', [e1, e2]);
  assert.deepEqual(sick.files, ['best.ckpt', 'early-best.ckpt', 'final.ckpt', 'last.ckpt']);
  assert.match(sick.good, /best\.ckpt \(head epoch 1:/);
  assert.deepEqual(finish('kept', [e1], true).files, ['best.ckpt', 'early-best.ckpt', 'final.ckpt', 'last.ckpt']);
});
