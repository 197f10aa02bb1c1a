/**
 * npm run bench:pretraining — "Pretraining matters, measured": Fashion-MNIST with 100 labelled images per
 * class (1,000 in all, a seeded stratified pick from the training set), four ways:
 *
 *  1. probe     — nsfwjs@4.4.0's MobileNetV2 (ImageNet-initialised, imported by graft), frozen; logistic
 *                 regression on its 1280-d `flatten_1` features;
 *  2. finetune  — the same network with a new linear head; the last stage (everything after `--cut`,
 *                 default `block_12_add`: blocks 13–16, Conv_1) and the head trained, the rest frozen;
 *  3. random    — the same architecture re-initialised at random (convs He-normal fan-out as torchvision's
 *                 MobileNetV2, BN γ 1 β 0, BN statistics re-estimated on the 1,000 training images — AdaBN —
 *                 so the frozen random prefix is normalised), trained exactly as (2); plus a linear probe on
 *                 its random features;
 *  4. pixels    — logistic regression on the 784 raw pixels (scaled to [0, 1]).
 *
 * Images: 28×28 grayscale, bilinearly upsampled (align_corners = false) to 224×224, the gray channel copied
 * to R, G and B, then the preprocessing `graft import nsfwjs:MobileNetV2` records (÷255, mean 0, std 1).
 * They are generated batch by batch, never all at once. With a frozen prefix the prefix runs once per image
 * (BN in inference mode, no augmentation, so this is exact) and only the part after the cut is trained on
 * the cached activations; `--cut input_1` trains the whole network instead (slow: ~10× a step of (2)).
 * Test: a fixed stratified subset of the 10,000 test images (`--test 2000`, drawn with seed 0 whatever
 * `--seed` is), or `--test all`. Nothing is tuned on the test set: every hyper-parameter is fixed below.
 *
 * Prints JSON lines as it goes (extraction progress, epochs) and a table at the end.
 * Usage: GRAFT_THREADS=1 npm run bench:pretraining [-- --seed 0 --extra-seeds 1,2 --test 2000 --epochs 10]
 * Debug: npm run bench:pretraining -- --train-per-class 5 --test 200 --epochs 1 --probe-epochs 5
 */
import fs from 'node:fs';
import { parseArgs } from 'node:util';
import { adaBN } from '../src/adapt/adabn.js';
import { FASHION_MNIST_CLASSES, loadFashionMnist } from '../src/data/idx.js';
import type { PreprocessConfig } from '../src/data/preprocess.js';
import { bilinearResize } from '../src/data/shift.js';
import { kPerClass } from '../src/data/split.js';
import type { Model } from '../src/ir/model.js';
import { paramNames } from '../src/ir/params.js';
import { extractSubgraph, suffixFrom } from '../src/ir/surgery.js';
import { full, kaimingNormal } from '../src/nn/init.js';
import { linear } from '../src/nn/layers.js';
import { sgd } from '../src/optim/index.js';
import { cosineSchedule } from '../src/optim/schedule.js';
import { createSession, ort } from '../src/runtime/session.js';
import { ArraySource, BatchBuffers, type BatchSource, batches } from '../src/step/batches.js';
import { Rng } from '../src/tensor.js';
import type { Callback } from '../src/train/callbacks.js';
import { Network } from '../src/train/network.js';

const { values } = parseArgs({
  options: {
    seed: { type: 'string', default: '0' },
    'extra-seeds': { type: 'string', default: '' },
    'train-per-class': { type: 'string', default: '100' },
    test: { type: 'string', default: '2000' },
    epochs: { type: 'string', default: '10' },
    'probe-epochs': { type: 'string', default: '100' },
    batch: { type: 'string', default: '32' },
    lr: { type: 'string', default: '0.01' },
    'probe-lr': { type: 'string', default: '0.01' },
    'weight-decay': { type: 'string', default: '1e-4' },
    cut: { type: 'string', default: 'block_12_add' },
    'extract-batch': { type: 'string', default: '32' },
    configs: { type: 'string', default: 'pixels,probe,finetune,random' },
    out: { type: 'string' },
  },
});
const seed = Number(values.seed);
const extraSeeds = values['extra-seeds'] ? values['extra-seeds'].split(',').map(Number) : [];
const seeds = [seed, ...extraSeeds.filter((s) => s !== seed)];
const perClass = Number(values['train-per-class']);
const epochs = Number(values.epochs);
const probeEpochs = Number(values['probe-epochs']);
const batchSize = Number(values.batch);
const lr = Number(values.lr);
const probeLr = Number(values['probe-lr']);
const weightDecay = Number(values['weight-decay']);
const extractBatch = Number(values['extract-batch']);
const configs = new Set(values.configs.split(','));
for (const c of configs)
  if (!['pixels', 'probe', 'finetune', 'random'].includes(c)) throw new Error(`Unknown config "${c}"; use pixels, probe, finetune, random.`);

const T0 = performance.now();
const log = (o: Record<string, unknown>) => console.log(JSON.stringify({ t: +((performance.now() - T0) / 1000).toFixed(1), ...o }));
const secs = (t: number) => +((performance.now() - t) / 1000).toFixed(1);

// ---------------------------------------------------------------- data
const ds = await loadFashionMnist();
const PIX = ds.train.rows * ds.train.cols;
const trainIdx = new Map(seeds.map((s) => [s, kPerClass(ds.train.y, perClass, s, { classes: FASHION_MNIST_CLASSES })]));
const testIdx =
  values.test === 'all'
    ? Int32Array.from({ length: ds.test.n }, (_, i) => i)
    : kPerClass(ds.test.y, Math.round(Number(values.test) / 10), 0, { classes: FASHION_MNIST_CLASSES });
const threads = Number(process.env.GRAFT_THREADS) || 'all cores';
log({
  bench: 'pretraining',
  seeds,
  trainPerClass: perClass,
  train: perClass * 10,
  test: testIdx.length,
  epochs,
  probeEpochs,
  batchSize,
  lr,
  cut: values.cut,
  threads,
});

/**
 * Fashion-MNIST images upsampled on the fly to the model's input: bilinear 28→224, gray copied to RGB,
 * then the model's preprocessing (pixel·255/scale − mean) / std.
 */
class UpsampledSource implements BatchSource {
  readonly sampleShape: readonly number[];
  readonly numClasses = 10;
  private readonly tmp: Float32Array;
  constructor(
    private readonly images: Float32Array,
    private readonly labels: Uint8Array,
    private readonly indices: Int32Array,
    private readonly pre: PreprocessConfig,
  ) {
    const [h, w] = pre.size;
    this.sampleShape = [3, h, w];
    this.tmp = new Float32Array(h * w);
  }
  get length(): number {
    return this.indices.length;
  }
  fill(idx: ArrayLike<number>, x: Float32Array, y: BigInt64Array): void {
    const [h, w] = this.pre.size;
    const hw = h * w;
    const k = 255 / this.pre.scale;
    for (let i = 0; i < idx.length; i++) {
      const j = this.indices[idx[i]!]!;
      bilinearResize(this.images.subarray(j * PIX, (j + 1) * PIX), ds.train.rows, ds.train.cols, h, w, this.tmp);
      for (let c = 0; c < 3; c++) {
        const m = this.pre.mean?.[c] ?? 0;
        const sd = this.pre.std?.[c] ?? 1;
        const off = (i * 3 + c) * hw;
        for (let p = 0; p < hw; p++) x[off + p] = (this.tmp[p]! * k - m) / sd;
      }
      y[i] = BigInt(this.labels[j]!);
    }
  }
}

/** Runs `model` (one input, first output) over every sample of `src` in order; JSONL progress every ~20 s. */
async function extract(model: Model, src: BatchSource, what: string): Promise<ArraySource> {
  const t = performance.now();
  const s = await createSession(model);
  const bufs = new BatchBuffers(src.sampleShape);
  const labels = new Int32Array(src.length);
  let out: Float32Array | undefined;
  let dims: number[] = [];
  let row = 0;
  let lastLog = performance.now();
  for await (const b of batches(src, bufs, { batchSize: extractBatch, seed: 0, epoch: 0, shuffle: false })) {
    const r = await s.run({ [s.inputNames[0]!]: new ort.Tensor('float32', b.x.data as Float32Array, [...b.x.dims]) });
    const f = r[s.outputNames[0]!]!;
    if (!out) {
      dims = f.dims.slice(1) as number[];
      out = new Float32Array(src.length * (f.size / b.size));
    }
    out.set(f.data as Float32Array, row * (f.size / b.size));
    const yy = b.y.data as BigInt64Array;
    for (let i = 0; i < b.size; i++) labels[row + i] = Number(yy[i]);
    row += b.size;
    if (performance.now() - lastLog > 20000) {
      lastLog = performance.now();
      log({ phase: 'extract', what, done: row, of: src.length, img_per_s: +(row / ((performance.now() - t) / 1000)).toFixed(1) });
    }
  }
  await s.release();
  log({ phase: 'extract', what, done: row, of: src.length, dims, s: secs(t) });
  return new ArraySource(out ?? new Float32Array(0), labels, dims, 10);
}

/** Per-dimension standardisation with the training set's mean and std (applied to both). */
function standardize(train: ArraySource, test: ArraySource): [ArraySource, ArraySource] {
  const d = train.sampleShape.reduce((a, b) => a * b, 1);
  const mean = new Float64Array(d);
  const sq = new Float64Array(d);
  const n = train.length;
  for (let i = 0; i < n; i++)
    for (let j = 0; j < d; j++) {
      const v = train.x[i * d + j]!;
      mean[j]! += v;
      sq[j]! += v * v;
    }
  const std = new Float64Array(d);
  for (let j = 0; j < d; j++) {
    mean[j]! /= n;
    std[j] = Math.sqrt(Math.max(sq[j]! / n - mean[j]! ** 2, 0)) + 1e-6;
  }
  const apply = (src: ArraySource) => {
    const x = new Float32Array(src.x.length);
    for (let i = 0; i < src.length; i++) for (let j = 0; j < d; j++) x[i * d + j] = (src.x[i * d + j]! - mean[j]!) / std[j]!;
    return new ArraySource(x, src.y, [d], 10);
  };
  return [apply(train), apply(test)];
}

const epochLog = (what: string): Callback => ({
  name: 'jsonl',
  onEpochEnd: (s, m) => {
    if (s.epochs <= 20 || (m.epoch ?? 0) % 10 === 0 || m.epoch === s.epochs)
      log({ phase: 'train', what, epoch: m.epoch, of: s.epochs, train_loss: +(m.train_loss ?? 0).toFixed(4), train_acc: +(m.train_acc ?? 0).toFixed(4) });
  },
});

/** Logistic regression (one linear layer, cross-entropy) on standardised vectors. */
async function logisticRegression(what: string, train: ArraySource, test: ArraySource, s: number): Promise<Result> {
  const t = performance.now();
  const [tr, te] = standardize(train, test);
  const d = tr.sampleShape[0]!;
  const net = new Network(linear(d, 10).build({ inputShape: ['N', d], seed: s }));
  return trainAndScore(what, net, tr, te, { epochs: probeEpochs, lr: probeLr }, s, t);
}

/** SGD + cosine training shared by every configuration, then the test accuracy and both timings (from `t0`). */
async function trainAndScore(
  what: string,
  net: Network,
  train: ArraySource | BatchSource,
  test: ArraySource | BatchSource,
  o: { epochs: number; lr: number; evalBatch?: number },
  s: number,
  t0: number,
): Promise<Result> {
  await net.fit(train, {
    epochs: o.epochs,
    batchSize,
    optimizer: sgd({ lr: o.lr, momentum: 0.9, weightDecay }),
    schedule: cosineSchedule(),
    seed: s,
    featureCache: false,
    callbacks: [epochLog(what)],
  });
  const trainS = secs(t0);
  const t2 = performance.now();
  const ev = await net.evaluate(test, o.evalBatch);
  return { config: what, seed: s, test_acc: ev.acc, train_s: trainS, eval_s: secs(t2), final_train_acc: net.lastFit?.history.at(-1)?.train_acc };
}

/** Trains the whole suffix model (everything after the cut + the new head) on cached activations. */
async function fineTune(what: string, suffix: Model, train: ArraySource | BatchSource, test: ArraySource | BatchSource, s: number): Promise<Result> {
  const t = performance.now();
  const net = new Network(suffix);
  const nParams = net.trainable.size;
  log({
    phase: 'finetune',
    what,
    trainable_tensors: nParams,
    trainable_values: [...net.trainable].reduce((a, p) => a + suffix.graph.initializers.get(p)!.size, 0),
  });
  return trainAndScore(what, net, train, test, { epochs, lr, evalBatch: 100 }, s, t);
}

interface Result {
  config: string;
  seed: number;
  test_acc: number;
  train_s: number;
  eval_s: number;
  final_train_acc?: number;
}

/**
 * Re-initialises every Conv and BatchNormalization of an imported model as torchvision's MobileNetV2 does
 * at construction: conv weights He-normal (fan-out), conv biases 0, BN γ 1, β 0, running mean 0, var 1.
 * Parameters outside Conv/BN (the new head keeps its own fresh init) are left alone; `skip` names them.
 */
function randomInit(model: Model, s: number, skip: Set<string>): Model {
  const m = model.clone();
  const g = m.graph;
  const rng = new Rng(1000 + s);
  const done = new Set<string>();
  const set = (name: string | undefined, make: (dims: number[]) => ReturnType<typeof full>) => {
    if (!name || !g.initializers.has(name) || done.has(name)) return;
    g.initializers.set(name, make([...g.initializers.get(name)!.dims]));
    done.add(name);
  };
  for (const n of g.nodes) {
    if (n.op === 'Conv') {
      set(n.inputs[1], (d) => kaimingNormal(rng, d, 'fan_out'));
      set(n.inputs[2], (d) => full(d, 0));
    } else if (n.op === 'BatchNormalization') {
      set(n.inputs[1], (d) => full(d, 1));
      set(n.inputs[2], (d) => full(d, 0));
      set(n.inputs[3], (d) => full(d, 0));
      set(n.inputs[4], (d) => full(d, 1));
    }
  }
  const left = paramNames(m).filter((p) => !done.has(p) && !skip.has(p));
  if (left.length) throw new Error(`randomInit: parameters not re-initialised: ${left.join(', ')}`);
  return m;
}

// ---------------------------------------------------------------- runs
const results: Result[] = [];
const extraction: Record<string, number> = {};
const record = (r: Result) => {
  results.push(r);
  log({ phase: 'result', ...r, test_acc: +r.test_acc.toFixed(4) });
};

if (configs.has('pixels')) {
  const pix = (split: typeof ds.train, idx: Int32Array) => {
    const x = new Float32Array(idx.length * PIX);
    for (let i = 0; i < idx.length; i++) x.set(split.x.subarray(idx[i]! * PIX, (idx[i]! + 1) * PIX), i * PIX);
    return new ArraySource(
      x,
      Int32Array.from(idx, (j) => split.y[j]!),
      [PIX],
      10,
    );
  };
  const te = pix(ds.test, testIdx);
  for (const s of seeds) record(await logisticRegression('pixels + logistic regression', pix(ds.train, trainIdx.get(s)!), te, s));
}

const base = Network.load('nsfwjs:MobileNetV2');
const pre = base.preprocess!;
const inputName = base.model.graph.inputs[0]!.name;
const cut = values.cut!;
if (!base.model.graph.has(cut)) throw new Error(`--cut ${cut} is not a value of nsfwjs MobileNetV2 (see \`graft inspect nsfwjs:MobileNetV2\`).`);
log({ phase: 'model', source: base.model.metadata['graft.source'], preprocess: pre, feature_cut: base.cut });
const testImgs = new UpsampledSource(ds.test.x, ds.test.y, testIdx, pre);

/**
 * One backbone (pretrained or random): prefix activations at the cut for the union of training images and
 * the test set, then the probe on `flatten_1` features and the fine-tune of the suffix.
 */
async function runBackbone(kind: 'pretrained' | 'random', net: Network, probeSeeds: number[], doFineTune: boolean): Promise<void> {
  const t = performance.now();
  // every training image some seed needs, once; rowsOf(s) are seed s's rows in it
  const union = Int32Array.from(new Set([...probeSeeds, seed].flatMap((s) => [...trainIdx.get(s)!]))).sort();
  const rowOf = new Map(Array.from(union, (v, i) => [v, i]));
  const rowsOf = (s: number) => Int32Array.from(trainIdx.get(s)!, (i) => rowOf.get(i)!);
  const trainImgs = new UpsampledSource(ds.train.x, ds.train.y, union, pre);
  let trainActs: BatchSource = trainImgs;
  let testActs: BatchSource = testImgs;
  if (cut !== inputName) {
    const prefix = extractSubgraph(net.model, cut);
    trainActs = await extract(prefix, trainImgs, `${kind} ${cut}, train`);
    testActs = await extract(prefix, testImgs, `${kind} ${cut}, test`);
    extraction[`${kind} ${inputName} → ${cut}`] = secs(t);
  }
  const rows = (s: number) =>
    trainActs instanceof ArraySource ? trainActs.subset(rowsOf(s)) : new UpsampledSource(ds.train.x, ds.train.y, trainIdx.get(s)!, pre);
  if (probeSeeds.length) {
    const tf = performance.now();
    const featModel = suffixFrom(extractSubgraph(net.model, net.cut!), cut);
    const trF = await extract(featModel, trainActs, `${kind} ${net.cut}, train`);
    const teF = await extract(featModel, testActs, `${kind} ${net.cut}, test`);
    extraction[`${kind} ${cut} → ${net.cut}`] = secs(tf);
    for (const s of probeSeeds) record(await logisticRegression(`${kind} MobileNetV2, frozen + linear probe`, trF.subset(rowsOf(s)), teF, s));
  }
  if (doFineTune) {
    const suffix = cut === inputName ? net.model : suffixFrom(net.model, cut);
    record(await fineTune(`${kind} MobileNetV2, ${cut === inputName ? 'whole network' : `after ${cut}`} + head trained`, suffix, rows(seed), testActs, seed));
  }
}

if (configs.has('probe') || configs.has('finetune')) {
  const net = Network.load('nsfwjs:MobileNetV2');
  net.replaceHead(linear(1280, 10), { seed });
  await runBackbone('pretrained', net, configs.has('probe') ? seeds : [], configs.has('finetune'));
}
if (configs.has('random')) {
  if (seeds.length > 1) log({ note: 'the random-init backbone runs with the first seed only' });
  const net = Network.load('nsfwjs:MobileNetV2');
  net.replaceHead(linear(1280, 10), { seed });
  const t = performance.now();
  const randomModel = randomInit(net.model, seed, new Set(net.headParameters));
  // BN statistics of the random network, estimated on this seed's training images (train-mode batch stats).
  const trainOnly = new UpsampledSource(ds.train.x, ds.train.y, trainIdx.get(seed)!, pre);
  net.model = await adaBN(randomModel, trainOnly, { batchSize: 50 });
  extraction['random AdaBN'] = secs(t);
  log({ phase: 'adabn', s: extraction['random AdaBN'] });
  await runBackbone('random', net, [seed], true);
}

// ---------------------------------------------------------------- report
const total = secs(T0);
const byConfig = new Map<string, Result[]>();
for (const r of results) byConfig.set(r.config, [...(byConfig.get(r.config) ?? []), r]);
const pct = (v: number) => `${(100 * v).toFixed(2)} %`;
console.log('');
console.log(`| configuration | test acc, seed ${seed} | ${seeds.length > 1 ? `mean ± sd (seeds ${seeds.join(',')}) | ` : ''}train s | eval s |`);
console.log(`|---|---|${seeds.length > 1 ? '---|' : ''}---|---|`);
for (const [c, rs] of byConfig) {
  const r0 = rs.find((r) => r.seed === seed)!;
  let ms = '';
  if (seeds.length > 1) {
    if (rs.length > 1) {
      const m = rs.reduce((a, r) => a + r.test_acc, 0) / rs.length;
      const sd = Math.sqrt(rs.reduce((a, r) => a + (r.test_acc - m) ** 2, 0) / (rs.length - 1));
      ms = `${(100 * m).toFixed(2)} ± ${(100 * sd).toFixed(2)} | `;
    } else ms = '— | ';
  }
  console.log(`| ${c} | ${pct(r0.test_acc)} | ${ms}${r0.train_s} | ${r0.eval_s} |`);
}
console.log('');
console.log(`passes over the images, each run once for all seeds and configs (s): ${JSON.stringify(extraction)}; total ${total} s`);
const summary = { bench: 'pretraining', seeds, test: testIdx.length, cut, threads, extraction_s: extraction, total_s: total, results };
console.log(JSON.stringify(summary));
if (values.out) fs.writeFileSync(values.out, `${JSON.stringify(summary, null, 2)}\n`);
