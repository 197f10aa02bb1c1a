/**
 * npm run bench:rank — does `graft rank` predict which backbone trains best? On each target, every backbone is
 * scored by `rank()` (LogME, SFDA, kNN, linear probe) on the target's training images, then actually trained in
 * head mode by the run layer (`runTraining`, `graft train --mode head` defaults — MLP head 256-256, SGD 0.01
 * momentum 0.9, batch 32, 15 % validation with early stopping (patience 3) — but `--head-epochs 40` instead of
 * 10, which on a few hundred images is only ~50 steps and leaves every head near chance) and evaluated on the
 * target's held-out test images; and, as a second ground truth, a linear head on standardised features (the
 * probe's protocol) trained on all training images and measured on the same test images. Per target
 * and score: Kendall τ-b between the scores and the test accuracies.
 *
 * Backbones (default 7): MNIST-pretrained nets of different depth (LeNet-5, SmallCNN width 16, ResNet-18 width 8,
 * and a weak SmallCNN pretrained on 300 images for one epoch), all pretrained on MNIST digits 0–4 only;
 * random-init controls (arch:lenet5, arch:small-cnn); nsfwjs:MobileNetV2 (ImageNet-initialised, 224 px, shipped
 * offline by the nsfwjs package); `--inception` adds nsfwjs:InceptionV3 (299 px, slow on 2 cores).
 * Targets, written as PNG image folders so each backbone decodes them with its own preprocessing:
 *   style        MNIST test digits 0–4 under the demo's style shift (src/data/shift.ts, seed 1): same classes, new domain;
 *   new-classes  MNIST test digits 5–9: classes the MNIST nets never saw;
 *   fashion      Fashion-MNIST test images (/usr/share/datasets/fashion-mnist), 10 classes;
 *   shapes       a synthetic image folder: circle / square / triangle / cross of random size, place and colours, 48 px RGB.
 * Sizes are small on purpose (the machine is 2 shared cores): `--train-per-class 40` (20 for 10-class targets)
 * and `--test-per-class 20`, drawn from the test splits with seed 0, so a few hundred images per target.
 *
 * Prints JSON lines as it goes and a markdown table at the end (`--out file.json` also writes everything).
 * Usage: GRAFT_THREADS=2 npm run bench:rank [-- --targets style,new-classes,fashion,shapes --inception]
 * Quick: npm run bench:rank -- --targets style --backbones mnist-lenet5,arch:lenet5 --pretrain-samples 1000
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import sharp from 'sharp';
import { kendallTau } from '../src/choose/kendall.js';
import { backboneFeatures, loadRankData, rank } from '../src/choose/rank.js';
import { linearProbeAccuracy } from '../src/choose/scores/probe.js';
import { SCORE_NAMES, type ScoreName } from '../src/choose/scores.js';
import { loadFashionMnist, loadMnist } from '../src/data/idx.js';
import { parsePreprocessConfig } from '../src/data/preprocess.js';
import { styleShift } from '../src/data/shift.js';
import { kPerClass } from '../src/data/split.js';
import { featureCut } from '../src/ir/surgery.js';
import { lenet5, resnet18, smallCNN } from '../src/nn/index.js';
import type { Module } from '../src/nn/module.js';
import { sgd } from '../src/optim/index.js';
import { parseConfig } from '../src/run/config.js';
import { runTraining } from '../src/run/train.js';
import { ArraySource } from '../src/step/batches.js';
import { Rng } from '../src/tensor.js';
import { Network } from '../src/train/network.js';

const { values } = parseArgs({
  options: {
    seed: { type: 'string', default: '0' },
    targets: { type: 'string', default: 'style,new-classes,fashion,shapes' },
    backbones: { type: 'string' },
    'train-per-class': { type: 'string', default: '40' },
    'test-per-class': { type: 'string', default: '20' },
    'pretrain-samples': { type: 'string', default: '6000' },
    'pretrain-epochs': { type: 'string', default: '2' },
    inception: { type: 'boolean', default: false },
    out: { type: 'string' },
    keep: { type: 'boolean', default: false },
    'head-epochs': { type: 'string', default: '40' },
  },
});
const seed = Number(values.seed);
const T0 = performance.now();
const log = (o: Record<string, unknown>) => console.log(JSON.stringify({ t: +((performance.now() - T0) / 1000).toFixed(1), ...o }));
const root = fs.mkdtempSync(path.join(os.tmpdir(), 'graft-bench-rank-'));
process.env.GRAFT_CACHE_DIR = path.join(root, 'cache'); // rank() and runTraining share one feature store
const MNIST_PRE = parsePreprocessConfig({ size: [28, 28], channels: 1, resize: 'stretch', scale: 255, mean: [0], std: [1] });

// ---------------------------------------------------------------- MNIST-pretrained backbones (digits 0–4)
const mnist = await loadMnist();
const srcIdx = Int32Array.from({ length: mnist.train.n }, (_, i) => i).filter((i) => mnist.train.y[i]! < 5);

async function pretrained(name: string, mod: Module, samples: number, epochs: number): Promise<string> {
  const t = performance.now();
  const idx = srcIdx.slice(0, samples);
  const x = new Float32Array(idx.length * 784);
  idx.forEach((i, k) => void x.set(mnist.train.x.subarray(i * 784, (i + 1) * 784), k * 784));
  const src = new ArraySource(
    x,
    Int32Array.from(idx, (i) => mnist.train.y[i]!),
    [1, 28, 28],
    5,
  );
  const model = mod.build({ inputShape: ['N', 1, 28, 28], seed });
  const net = new Network(model, { preprocess: MNIST_PRE, labels: ['0', '1', '2', '3', '4'] });
  net.cut = featureCut(model).value;
  const r = await net.fit(src, { epochs, batchSize: 64, optimizer: sgd({ lr: 0.01, momentum: 0.9, weightDecay: 5e-4 }), seed });
  const file = path.join(root, 'models', name, 'model.onnx');
  net.save(file);
  log({
    phase: 'pretrain',
    backbone: name,
    samples: idx.length,
    epochs,
    train_acc: r.history.at(-1)?.train_acc,
    s: +((performance.now() - t) / 1000).toFixed(1),
  });
  return file;
}

const samples = Number(values['pretrain-samples']);
const epochs = Number(values['pretrain-epochs']);
const makers: Record<string, () => Promise<string>> = {
  'mnist-lenet5': () => pretrained('mnist-lenet5', lenet5({ classes: 5 }), samples, epochs),
  'mnist-small-cnn': () => pretrained('mnist-small-cnn', smallCNN({ width: 16, classes: 5 }), samples, epochs),
  'mnist-resnet18': () => pretrained('mnist-resnet18', resnet18({ width: 8, inChannels: 1, classes: 5 }), samples, epochs),
  'mnist-small-cnn-weak': () => pretrained('mnist-small-cnn-weak', smallCNN({ width: 16, classes: 5 }), 300, 1),
};
const names = values.backbones
  ? values.backbones.split(',')
  : [...Object.keys(makers), 'arch:lenet5', 'arch:small-cnn', 'nsfwjs:MobileNetV2', ...(values.inception ? ['nsfwjs:InceptionV3'] : [])];
const refOf = new Map<string, string>();
for (const n of names) refOf.set(n, makers[n] ? await makers[n]() : n);

// ---------------------------------------------------------------- targets as image folders
async function writeGray(dir: string, x: Float32Array, i: number): Promise<void> {
  const px = Buffer.alloc(784);
  for (let p = 0; p < 784; p++) px[p] = Math.round(Math.min(1, Math.max(0, x[i * 784 + p]!)) * 255);
  await sharp(px, { raw: { width: 28, height: 28, channels: 1 } })
    .png()
    .toFile(path.join(dir, `${i}.png`));
}

/** Writes train/ and test/ folders of a 28×28 grayscale target from test-split images `x` with `labels`. */
async function grayTarget(name: string, x: Float32Array, labels: ArrayLike<number>, classes: readonly string[], perClassTrain: number): Promise<string> {
  const dir = path.join(root, 'targets', name);
  const perTest = Number(values['test-per-class']);
  const chosen = kPerClass(labels, perClassTrain + perTest, 0);
  const byClass = new Map<number, number[]>();
  for (const i of chosen) (byClass.get(labels[i]!) ?? byClass.set(labels[i]!, []).get(labels[i]!)!).push(i);
  for (const [c, idx] of byClass) {
    const safe = classes[c]!.replace(/[^\w-]+/g, '_');
    for (const [k, i] of idx.entries()) {
      const sub = path.join(dir, k < perClassTrain ? 'train' : 'test', safe);
      fs.mkdirSync(sub, { recursive: true });
      await writeGray(sub, x, i);
    }
  }
  return dir;
}

async function shapesTarget(perClassTrain: number): Promise<string> {
  const dir = path.join(root, 'targets', 'shapes');
  const rng = new Rng(seed + 7);
  const perTest = Number(values['test-per-class']);
  const colour = () => `rgb(${rng.int(256)},${rng.int(256)},${rng.int(256)})`;
  const draw: Record<string, (cx: number, cy: number, r: number) => string> = {
    circle: (cx, cy, r) => `<circle cx="${cx}" cy="${cy}" r="${r}"/>`,
    square: (cx, cy, r) => `<rect x="${cx - r}" y="${cy - r}" width="${2 * r}" height="${2 * r}"/>`,
    triangle: (cx, cy, r) => `<polygon points="${cx},${cy - r} ${cx - r},${cy + r} ${cx + r},${cy + r}"/>`,
    cross: (cx, cy, r) =>
      `<path d="M${cx - r} ${cy - r / 3}h${2 * r}v${(2 * r) / 3}h${-2 * r}zM${cx - r / 3} ${cy - r}h${(2 * r) / 3}v${2 * r}h${(-2 * r) / 3}z"/>`,
  };
  for (const [cls, f] of Object.entries(draw))
    for (let k = 0; k < perClassTrain + perTest; k++) {
      const r = 8 + rng.int(10);
      const cx = r + rng.int(48 - 2 * r);
      const cy = r + rng.int(48 - 2 * r);
      const svg = `<svg xmlns="http://www.w3.org/2000/svg" width="48" height="48"><rect width="48" height="48" fill="${colour()}"/><g fill="${colour()}">${f(cx, cy, r)}</g></svg>`;
      const sub = path.join(dir, k < perClassTrain ? 'train' : 'test', cls);
      fs.mkdirSync(sub, { recursive: true });
      await sharp(Buffer.from(svg))
        .png()
        .toFile(path.join(sub, `${k}.png`));
    }
  return dir;
}

const perTrain = Number(values['train-per-class']);
const targetMakers: Record<string, () => Promise<string>> = {
  style: async () => {
    const idx = Int32Array.from({ length: mnist.test.n }, (_, i) => i).filter((i) => mnist.test.y[i]! < 5);
    const x = new Float32Array(idx.length * 784);
    idx.forEach((i, k) => void x.set(mnist.test.x.subarray(i * 784, (i + 1) * 784), k * 784));
    return grayTarget(
      'style',
      styleShift(x, { seed: 1 }),
      Int32Array.from(idx, (i) => mnist.test.y[i]!),
      ['0', '1', '2', '3', '4'],
      perTrain,
    );
  },
  'new-classes': async () => {
    const idx = Int32Array.from({ length: mnist.test.n }, (_, i) => i).filter((i) => mnist.test.y[i]! >= 5);
    const x = new Float32Array(idx.length * 784);
    idx.forEach((i, k) => void x.set(mnist.test.x.subarray(i * 784, (i + 1) * 784), k * 784));
    return grayTarget(
      'new-classes',
      x,
      Int32Array.from(idx, (i) => mnist.test.y[i]! - 5),
      ['5', '6', '7', '8', '9'],
      perTrain,
    );
  },
  fashion: async () => {
    const f = await loadFashionMnist();
    return grayTarget('fashion', f.test.x, f.test.y, f.classes, Math.max(1, Math.round(perTrain / 2)));
  },
  shapes: () => shapesTarget(perTrain),
};

// ---------------------------------------------------------------- score, train, compare
/**
 * The second ground truth: a linear head on standardised features (the probe's protocol, `linearProbeAccuracy`
 * with an explicit split) trained on every training image and measured on the test images. The features come
 * from the store (rank() and runTraining computed them already).
 */
async function linearHeadAccuracy(ref: string, dir: string): Promise<number> {
  const job = { seed, limit: 1e6, onWarning: (m: string) => log({ warning: m }) };
  const parts = [];
  let classes: string[] = [];
  for (const part of ['train', 'test']) {
    const d = await loadRankData({ ...job, data: path.join(dir, part) });
    classes = d.classes;
    parts.push((await backboneFeatures(ref, d.data, d.classes, { ...job, data: path.join(dir, part) })).source);
  }
  const [tr, te] = parts as [ArraySource, ArraySource];
  const dims = tr.sampleShape.reduce((a, c) => a * c, 1);
  const x = new Float32Array((tr.length + te.length) * dims);
  x.set(tr.x);
  x.set(te.x, tr.length * dims);
  const y = Int32Array.from([...tr.y, ...te.y]);
  const split = { train: Int32Array.from({ length: tr.length }, (_, i) => i), val: Int32Array.from({ length: te.length }, (_, i) => tr.length + i) };
  return (await linearProbeAccuracy(x, tr.length + te.length, dims, y, { seed, split, classes })).accuracy;
}

interface Row {
  target: string;
  backbone: string;
  scores?: Record<ScoreName, number>;
  acc?: number;
  /** Test accuracy of the standardised linear head (the probe's protocol) trained on the whole training split. */
  linearAcc?: number;
  rankSeconds?: number;
  trainSeconds?: number;
  error?: string;
}
const rows: Row[] = [];
const taus: Record<string, Record<ScoreName, number>> = {};
const tausLinear: Record<string, Record<ScoreName, number>> = {};
for (const target of values.targets.split(',')) {
  if (!targetMakers[target]) throw new Error(`Unknown target "${target}"; use ${Object.keys(targetMakers).join(', ')}.`);
  const dir = await targetMakers[target]();
  const r = await rank({ backbones: names.map((n) => refOf.get(n)!), data: path.join(dir, 'train'), seed, onWarning: (m) => log({ warning: m }) });
  for (const [k, b] of r.backbones.entries()) {
    const row: Row = { target, backbone: names[k]!, scores: b.scores, rankSeconds: +b.seconds.toFixed(1), error: b.error };
    if (!b.error) {
      const t = performance.now();
      const ref = refOf.get(names[k]!)!;
      const model = ref.startsWith('arch:') ? { arch: ref.slice(5) } : { backbone: ref };
      try {
        const cfg = parseConfig({
          data: { train: path.join(dir, 'train'), test: path.join(dir, 'test') },
          model,
          train: { mode: 'head', epochs: Number(values['head-epochs']) },
          run: { dir: path.join(root, 'runs'), name: `${target}-${k}`, seed },
        });
        const s = await runTraining(cfg, {});
        row.acc = s.metrics.test?.acc;
        row.linearAcc = await linearHeadAccuracy(ref, dir);
      } catch (e) {
        row.error = (e as Error).message;
      }
      row.trainSeconds = +((performance.now() - t) / 1000).toFixed(1);
    }
    rows.push(row);
    log({ phase: 'backbone', ...row });
  }
  const ok = rows.filter((x) => x.target === target && x.scores && x.acc !== undefined && x.linearAcc !== undefined);
  const tau = (truth: (r: Row) => number) =>
    Object.fromEntries(
      SCORE_NAMES.map((s) => [
        s,
        ok.length >= 2
          ? kendallTau(
              ok.map((x) => x.scores![s]),
              ok.map(truth),
            )
          : Number.NaN,
      ]),
    ) as Record<ScoreName, number>;
  taus[target] = tau((r) => r.acc!);
  tausLinear[target] = tau((r) => r.linearAcc!);
  log({ phase: 'tau', target, backbones: ok.length, head: taus[target], linear: tausLinear[target] });
}

// ---------------------------------------------------------------- report
const f3 = (v: number | undefined) => (v === undefined || Number.isNaN(v) ? '–' : v.toFixed(3));
const tauTable = (title: string, t: Record<string, Record<ScoreName, number>>) => [
  `| ${title} | ${SCORE_NAMES.map((s) => `τ ${s}`).join(' | ')} |`,
  `|---|${SCORE_NAMES.map(() => '---').join('|')}|`,
  ...Object.entries(t).map(([k, v]) => `| ${k} | ${SCORE_NAMES.map((s) => f3(v[s])).join(' | ')} |`),
  `| mean | ${SCORE_NAMES.map((s) => f3(Object.values(t).reduce((a, v) => a + v[s], 0) / Object.keys(t).length)).join(' | ')} |`,
  '',
];
const lines = [
  ...tauTable('target (vs head-mode acc)', taus),
  ...tauTable('target (vs linear head acc)', tausLinear),
  `| target | backbone | ${SCORE_NAMES.join(' | ')} | head-mode test acc | linear head test acc | rank s | train s |`,
  `|---|---|${SCORE_NAMES.map(() => '---').join('|')}|---|---|---|---|`,
  ...rows.map(
    (x) =>
      `| ${x.target} | ${x.backbone} | ${SCORE_NAMES.map((s) => f3(x.scores?.[s])).join(' | ')} | ${x.acc === undefined ? (x.error ?? '–') : `${(100 * x.acc).toFixed(1)} %`} | ${x.linearAcc === undefined ? '–' : `${(100 * x.linearAcc).toFixed(1)} %`} | ${x.rankSeconds ?? '–'} | ${x.trainSeconds ?? '–'} |`,
  ),
];
console.log(lines.join('\n'));
if (values.out) fs.writeFileSync(values.out, `${JSON.stringify({ seed, names, rows, taus, tausLinear, table: lines }, null, 2)}\n`);
if (!values.keep) fs.rmSync(root, { recursive: true, force: true });
else log({ kept: root });
