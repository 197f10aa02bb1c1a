/**
 * Issue 17 item 4, the swap: graft's `adapt()` started from the PyTorch reference's initial weights and fed the
 * reference's batches, step by step, so that what is left between the two accuracies is the engine.
 * The reference's draws come from bench/da-shift-ref.py (a wrapper around shared/ref/exp_da_shift.py's own run):
 * <from>/<method>-seed<s>.json (per-step source and target rows, the reference's accuracies) and .bin (its
 * initial SmallCNN weights, BN running statistics, and for DANN the discriminator's).
 *
 * Everything else is graft's: `adapt()` (fit, the joint step graph, the lr and GRL schedules, eval), last
 * checkpoint. Only the order is replaced: the source and target given to `adapt()` ignore the indices they are
 * asked for and hand out the reference's rows of the current step, and a callback loads the discriminator's
 * initial weights before the first step. Protocol: exp_da_shift.py --max-source <n>: source = the first n MNIST
 * training images, target pool = their style shift (seed 123), evaluation on the shifted test set (seed 456).
 *
 * Usage: GRAFT_THREADS=1 node --import tsx bench/adapt-swap.ts --method mcc --seeds 0,1,2 [--from runs/st/ref]
 *        [--detach] [--order ref|graft] [--init ref|graft] [--out runs/st/swap-mcc.jsonl]
 * --detach: MCC with TLlib's detached entropy weights (graft's `detachWeights`), against <from>/mcc-detach-seed<s>.*
 * when present. --order graft / --init graft: keep graft's own batch order / initial weights (one swap at a time).
 */
import fs from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { adapt, unlabelledArrays } from '../src/adapt/index.js';
import type { MethodName } from '../src/adapt/methods.js';
import { loadMnist } from '../src/data/idx.js';
import { styleShift } from '../src/data/shift.js';
import { smallCNN } from '../src/nn/index.js';
import { ArraySource, type BatchSource } from '../src/step/batches.js';
import { Tensor } from '../src/tensor.js';
import type { Callback } from '../src/train/callbacks.js';

const { values } = parseArgs({
  options: {
    method: { type: 'string', default: 'mcc' },
    seeds: { type: 'string', default: '0,1,2' },
    from: { type: 'string', default: 'runs/st/ref' },
    detach: { type: 'boolean', default: false },
    order: { type: 'string', default: 'ref' },
    init: { type: 'string', default: 'ref' },
    out: { type: 'string' },
  },
});
const method = values.method as MethodName;
if (method !== 'mcc' && method !== 'dann') throw new Error(`--method must be mcc or dann, got "${values.method}".`);
const tag = method + (values.detach ? '-detach' : '');
const out =
  values.out ?? `runs/st/swap-${tag}${values.order === 'ref' ? '' : `-order-${values.order}`}${values.init === 'ref' ? '' : `-init-${values.init}`}.jsonl`;

interface RefRun {
  method: string;
  seed: number;
  max_source: number;
  epochs: number;
  bs: number;
  tensors: { name: string; shape: number[]; offset: number; size: number }[];
  src: number[][];
  tgt: number[][];
  result: { acc_target_shift: number; acc_mnist_test: number };
}

/**
 * A source that hands out the recorded rows of step k on its k-th training fill, whatever indices it is asked for
 * (fills of another size, the checkpoint scoring's, read the indices asked for).
 */
function replay<S extends BatchSource>(inner: S, rows: number[][], what: string): S & { used(): number } {
  let k = 0;
  const marks = inner as Partial<{ unlabelled: true; numClasses: number; sampleDtype: BatchSource['sampleDtype'] }>;
  return Object.assign({} as S, {
    length: inner.length,
    sampleShape: inner.sampleShape,
    numClasses: marks.numClasses,
    sampleDtype: marks.sampleDtype,
    ...(marks.unlabelled ? { unlabelled: true as const } : {}),
    async fill(indices: ArrayLike<number>, x: Float32Array, y: BigInt64Array, ctx: { epoch: number; seed: number }) {
      // the checkpoint scoring reads the target through the same source, in batches of another size: pass those through
      if (indices.length !== rows[0]!.length) return inner.fill(indices, x, y, ctx);
      const r = rows[k++];
      if (!r) throw new Error(`${what}: fill ${k} of ${indices.length} rows, but the reference ran ${rows.length} steps.`);
      await inner.fill(r, x, y, ctx);
    },
    used: () => k,
  });
}

const ds = await loadMnist();
const sourceEval = new ArraySource(ds.test.x, ds.test.y, [1, 28, 28], 10);
const targetEval = new ArraySource(styleShift(ds.test.x, { seed: 456 }), ds.test.y, [1, 28, 28], 10);
fs.mkdirSync(path.dirname(out), { recursive: true });
for (const seed of values.seeds.split(',').map(Number)) {
  const base = path.join(values.from, `${tag}-seed${seed}`);
  const refFile = fs.existsSync(`${base}.json`) ? base : path.join(values.from, `${method}-seed${seed}`);
  const ref = JSON.parse(fs.readFileSync(`${refFile}.json`, 'utf8')) as RefRun;
  const blob = fs.readFileSync(`${refFile}.bin`);
  const all = new Float32Array(blob.buffer, blob.byteOffset, blob.byteLength / 4);
  const k = ref.max_source;
  const sx = ds.train.x.subarray(0, k * 784);
  const source = new ArraySource(sx, Int32Array.from(ds.train.y).subarray(0, k), [1, 28, 28], 10);
  const target = unlabelledArrays(styleShift(sx, { seed: 123 }), [1, 28, 28]);
  const model = smallCNN({ classes: 10 }).build({ inputShape: ['N', 1, 28, 28], seed });
  const disc = new Map<string, Tensor>();
  if (values.init === 'ref') {
    for (const t of ref.tensors) {
      const v = new Tensor('float32', t.shape, all.slice(t.offset, t.offset + t.size));
      if (t.name.startsWith('adapt.disc.')) disc.set(t.name, v);
      else {
        const cur = model.graph.initializers.get(t.name);
        if (!cur || cur.size !== t.size) throw new Error(`${refFile}.bin: "${t.name}" (${t.size} values) is not a smallCNN initializer of that size.`);
        model.graph.initializers.set(t.name, new Tensor('float32', [...cur.dims], v.data as Float32Array));
      }
    }
    const loaded = new Set(ref.tensors.map((t) => t.name));
    const missed = [...model.graph.initializers.keys()].filter((n) => model.graph.initializers.get(n)!.dtype === 'float32' && !loaded.has(n));
    if (missed.length) throw new Error(`${refFile}.bin lacks ${missed.join(', ')}.`);
  }
  const src = values.order === 'ref' ? replay(source, ref.src, 'source') : source;
  const tgt = values.order === 'ref' ? replay(target, ref.tgt, 'target') : target;
  const loadDisc: Callback = {
    name: 'swap-disc-init',
    onTrainBegin: (s) => {
      if (disc.size) s.runner.load(disc);
    },
  };
  const t0 = performance.now();
  const r = await adapt({
    model,
    source: src,
    target: tgt,
    sourceVal: sourceEval,
    targetEval,
    method: { name: method, detachWeights: values.detach || undefined },
    epochs: ref.epochs,
    batchSize: ref.bs,
    lr: 0.01,
    seed,
    select: 'last',
    callbacks: [loadDisc],
  });
  if (values.order === 'ref' && 'used' in src && (src.used() !== ref.src.length || (tgt as ReturnType<typeof replay>).used() !== ref.tgt.length))
    throw new Error(`replayed ${src.used()} source / ${(tgt as ReturnType<typeof replay>).used()} target batches of ${ref.src.length}.`);
  const row = {
    method: tag,
    seed,
    order: values.order,
    init: values.init,
    graft_target: 100 * r.last.target_acc!,
    ref_target: 100 * ref.result.acc_target_shift,
    diff: 100 * (r.last.target_acc! - ref.result.acc_target_shift),
    graft_source: 100 * r.last.source_val_acc!,
    ref_source: 100 * ref.result.acc_mnist_test,
    steps: r.steps,
    seconds: Math.round((performance.now() - t0) / 100) / 10,
  };
  console.log(JSON.stringify(row));
  fs.appendFileSync(out, `${JSON.stringify(row)}\n`);
}
