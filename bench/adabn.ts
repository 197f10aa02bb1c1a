/**
 * The AdaBN question (issue 17 item 4): graft's side of bench/adabn-torch.py. For the source-only models that
 * bench/adapt-auto.ts keeps (<out>.probs/seed<s>-source-only-{selected,last}.onnx: the checkpoint picked by the
 * run's --select, and the last one), the target accuracy as is and after AdaBN re-estimates the BatchNorm
 * statistics on (a) the first 10,000 shifted training images (graft's and exp_d_shift.py's choice) or (b) the
 * shifted test set itself (exp_da_shift.py's choice). With --write-init, writes graft's smallCNN initial weights
 * per seed as JSON (PyTorch state-dict names) for bench/adabn-torch.py --variant graft-init.
 *
 * Usage: node --import tsx bench/adabn.ts [--from runs/bench-adapt-auto.json] [--seeds 0,1,2]
 *        node --import tsx bench/adabn.ts --write-init runs/adabn-init --seeds 0,1,2
 *        node --import tsx bench/adabn.ts --train-from runs/torch-init --seeds 0   (graft's source-only training, bench/adapt-auto.ts's
 *          short protocol, from initial weights in <dir>/seed<s>.json, e.g. PyTorch's SmallCNN() after torch.manual_seed(s))
 */
import fs from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { adaBN, adapt, meanStd, predictProbabilities, unlabelledArrays } from '../src/adapt/index.js';
import { loadMnist } from '../src/data/idx.js';
import { styleShift } from '../src/data/shift.js';
import { smallCNN } from '../src/nn/index.js';
import { loadModel } from '../src/onnx/io.js';
import { ArraySource } from '../src/step/batches.js';
import { Tensor } from '../src/tensor.js';

const { values } = parseArgs({
  options: {
    from: { type: 'string', default: 'runs/bench-adapt-auto.json' },
    seeds: { type: 'string', default: '0,1,2' },
    'write-init': { type: 'string' },
    'train-from': { type: 'string' },
  },
});
const seeds = values.seeds.split(',').map(Number);
if (values['write-init']) {
  fs.mkdirSync(values['write-init'], { recursive: true });
  for (const s of seeds) {
    const m = smallCNN({ classes: 10 }).build({ inputShape: ['N', 1, 28, 28], seed: s });
    const w = Object.fromEntries([...m.graph.initializers].map(([k, t]) => [k, Array.from(t.data as Float32Array)]));
    fs.writeFileSync(path.join(values['write-init'], `seed${s}.json`), JSON.stringify(w));
  }
  process.exit(0);
}
const ds = await loadMnist();
const trainShift = styleShift(ds.train.x, { seed: 123 });
const first10k = new ArraySource(trainShift.subarray(0, 10000 * 784), ds.train.y.subarray(0, 10000), [1, 28, 28], 10);
const test = new ArraySource(styleShift(ds.test.x, { seed: 456 }), ds.test.y, [1, 28, 28], 10);
const acc = async (m: ReturnType<typeof loadModel>) => 100 * (await predictProbabilities(m, test, true)).acc;
const cols: Record<string, number[]> = {};
if (values['train-from']) {
  // graft's source-only run (bench/adapt-auto.ts's protocol) from the given initial weights
  for (const s of seeds) {
    const m = smallCNN({ classes: 10 }).build({ inputShape: ['N', 1, 28, 28], seed: s });
    const w = JSON.parse(fs.readFileSync(path.join(values['train-from'], `seed${s}.json`), 'utf8')) as Record<string, number[]>;
    for (const [k, t] of m.graph.initializers) m.graph.initializers.set(k, new Tensor('float32', t.dims, Float32Array.from(w[k]!)));
    const k = 5000;
    const source = new ArraySource(ds.train.x.subarray(0, k * 784), Int32Array.from(ds.train.y).subarray(0, k), [1, 28, 28], 10);
    const target = unlabelledArrays(trainShift, [1, 28, 28]);
    const r = await adapt({ model: m, source, target, method: 'source-only', epochs: 2, batchSize: 64, lr: 0.01, seed: s });
    const row = {
      as_is: await acc(r.lastModel),
      adabn_train10k: await acc(await adaBN(r.lastModel, first10k)),
      adabn_test: await acc(await adaBN(r.lastModel, test)),
    };
    console.log(JSON.stringify({ seed: s, init: values['train-from'], ...row }));
  }
  process.exit(0);
}
for (const s of seeds)
  for (const which of ['selected', 'last']) {
    const file = `${values.from}.probs/seed${s}-source-only-${which}.onnx`;
    if (!fs.existsSync(file)) continue;
    const m = loadModel(file);
    const r = { as_is: await acc(m), adabn_train10k: await acc(await adaBN(m, first10k)), adabn_test: await acc(await adaBN(m, test)) };
    console.log(JSON.stringify({ seed: s, checkpoint: which, ...r }));
    for (const [k, v] of Object.entries(r)) (cols[`${which}.${k}`] ??= []).push(v);
  }
for (const [k, v] of Object.entries(cols)) {
  const x = meanStd(v);
  console.log(`${k}: ${x.mean.toFixed(1)} ± ${x.std.toFixed(1)} (n = ${x.n})`);
}
