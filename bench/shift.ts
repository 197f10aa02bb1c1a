/**
 * graft shift on the three known shifts — none (two disjoint halves of MNIST), MNIST → the style shift
 * (mnist-style-shift), MNIST → Fashion-MNIST — in pixel space and in the features of a SmallCNN trained here on
 * MNIST (1 epoch on the first `--train` images; its MNIST test accuracy and style-shift accuracy are printed).
 * Prints the numbers, p-values and seconds per check as a Markdown table (docs/benchmarks.md, "Shift").
 *
 * Usage: node --import tsx bench/shift.ts [--samples 1000] [--mmd-samples 500] [--permutations 200] [--train 20000] [--seed 0]
 */
import os from 'node:os';
import { parseArgs } from 'node:util';
import { loadDomain } from '../src/choose/domains.js';
import { type ShiftReport, shift } from '../src/choose/shift.js';
import { loadMnist } from '../src/data/idx.js';
import { parsePreprocessConfig } from '../src/data/preprocess.js';
import { styleShift } from '../src/data/shift.js';
import { smallCNN } from '../src/nn/index.js';
import { sgd } from '../src/optim/sgd.js';
import { ArraySource } from '../src/step/batches.js';
import { toInferenceModel } from '../src/step/export.js';
import { Network } from '../src/train/network.js';

const { values } = parseArgs({
  options: {
    samples: { type: 'string', default: '1000' },
    'mmd-samples': { type: 'string', default: '500' },
    permutations: { type: 'string', default: '200' },
    train: { type: 'string', default: '20000' },
    seed: { type: 'string', default: '0' },
  },
});
const o = { samples: Number(values.samples), mmdSamples: Number(values['mmd-samples']), permutations: Number(values.permutations), seed: Number(values.seed) };
const pre = parsePreprocessConfig({ size: [28, 28], channels: 1, resize: 'stretch', scale: 255, mean: [0], std: [1] }, 'bench');
const mnist = await loadDomain('mnist', pre);
const style = await loadDomain('mnist-style-shift', pre);
const fashion = await loadDomain('fashion-mnist', pre);

// an MNIST-trained backbone: SmallCNN (width 16), 1 epoch of SGD on the first --train images
const ds = await loadMnist();
const k = Number(values.train);
const net = new Network(smallCNN({ classes: 10 }).build({ inputShape: ['N', 1, 28, 28], seed: 0 }));
let t = performance.now();
await net.fit(new ArraySource(ds.train.x.subarray(0, k * 784), Int32Array.from(ds.train.y).subarray(0, k), [1, 28, 28], 10), {
  epochs: 1,
  batchSize: 64,
  optimizer: sgd({ lr: 0.05, momentum: 0.9 }),
  seed: 0,
});
const testAcc = (await net.evaluate(new ArraySource(ds.test.x, ds.test.y, [1, 28, 28], 10))).acc;
const styleAcc = (await net.evaluate(new ArraySource(styleShift(ds.test.x, { seed: 456 }), ds.test.y, [1, 28, 28], 10))).acc;
console.error(
  `backbone: ${((performance.now() - t) / 1000).toFixed(0)} s, MNIST test ${(100 * testAcc).toFixed(1)} %, style-shifted test ${(100 * styleAcc).toFixed(1)} %`,
);
const backbone = toInferenceModel(net.model, { probabilities: false });

const rows: string[] = [];
for (const [space, bb] of [
  ['pixels', undefined],
  ['MNIST SmallCNN features', backbone],
] as const) {
  for (const [name, target] of [
    ['none (two halves of MNIST)', mnist],
    ['MNIST → style shift', style],
    ['MNIST → Fashion-MNIST', fashion],
  ] as const) {
    t = performance.now();
    const r: ShiftReport = await shift({ source: mnist, target, backbone: bb, ...o });
    const s = (performance.now() - t) / 1000;
    console.log(JSON.stringify({ space, name, ...r }));
    rows.push(
      `| ${space} | ${name} | ${r.aDistance.aDistance.toFixed(3)} | ${r.mmd.mmd2.toExponential(2)} | ${r.mmd.pValue.toFixed(3)} | ${r.summary.meanDistance.toFixed(3)} | ${r.summary.covRelative.toFixed(3)} | ${r.summary.normRatio.toFixed(3)} | ${r.level} | ${s.toFixed(1)} |`,
    );
  }
}
// the no-shift p-value over seeds (each seed draws other halves): under no shift it is uniform on (0, 1]
const nullP: string[] = [];
for (const [space, bb] of [
  ['pixels', undefined],
  ['features', backbone],
] as const) {
  const ps: string[] = [];
  for (const seed of [0, 1, 2, 3, 4]) ps.push((await shift({ source: mnist, target: mnist, backbone: bb, ...o, seed })).mmd.pValue.toFixed(3));
  nullP.push(`${space}: ${ps.join(' / ')}`);
}
console.log(`\nno-shift MMD p-value, seeds 0–4 — ${nullP.join('; ')}`);
console.log(
  `\n${os.cpus().length} cores, load ${os
    .loadavg()
    .map((x) => x.toFixed(2))
    .join(' ')}; samples ${o.samples}/domain, MMD on ${o.mmdSamples}, ${o.permutations} permutations, seed ${o.seed}`,
);
console.log(`backbone: MNIST test ${(100 * testAcc).toFixed(1)} %, style-shifted MNIST test ${(100 * styleAcc).toFixed(1)} %\n`);
console.log('| space | shift | proxy A-distance | MMD² | MMD p | mean distance | covariance gap | norm ratio | level | seconds |');
console.log('|---|---|---|---|---|---|---|---|---|---|');
for (const r of rows) console.log(r);
