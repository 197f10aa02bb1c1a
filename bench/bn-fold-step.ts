/**
 * Whole-step A/B in one process (not a test): MobileNetV2's training step with BN's scale a = γ·invstd folded into the
 * producing Conv's gradients (src/ops/bn-train.ts, `channelScaledGrad`) against the same step without the fold (BN's
 * dx passed through an Identity, which the Conv rule does not recognise and onnxruntime removes), the two sessions'
 * steps interleaved so that both see the same load; CPU ms per step of each (process CPU around each run).
 * Usage: node --import tsx bench/bn-fold-step.ts [--model nsfwjs:MobileNetV2] [--size 224] [--batch 8] [--rounds 12] [--swap]
 */
import { parseArgs } from 'node:util';
import { defineOp, opDef } from '../src/ir/op-registry.js';
import { linear, paramNames } from '../src/nn/index.js';
import { registerStandardOps } from '../src/ops/index.js';
import { sgd } from '../src/optim/index.js';
import { lowered } from '../src/runtime/session.js';
import { compileTrainStep } from '../src/step/compile.js';
import { StepRunner } from '../src/step/runner.js';
import { Rng, Tensor } from '../src/tensor.js';
import { Network } from '../src/train/network.js';

const { values } = parseArgs({
  options: {
    model: { type: 'string', default: 'nsfwjs:MobileNetV2' },
    size: { type: 'string', default: '224' },
    batch: { type: 'string', default: '8' },
    rounds: { type: 'string', default: '12' },
    swap: { type: 'boolean', default: false },
  },
});
registerStandardOps();
const batch = Number(values.batch);
const size = Number(values.size);
const model = Network.load(values.model!).replaceHead(linear(1280, 10), { seed: 0 }).model;
const compile = () =>
  compileTrainStep({ model, trainable: paramNames(model), optimizer: sgd({ lr: 0.01, momentum: 0.9, weightDecay: 5e-4 }), recompute: { batchSize: batch } });

const folded = compile();
const real = opDef('BatchNormTrain')!;
defineOp('BatchNormTrain', {
  ...real,
  grad: (e, n, dys, needs) => real.grad!(e, n, dys, needs).map((g, i) => (g && i === 0 ? e.op('Identity', [g]) : g)),
});
const plain = compile();
defineOp('BatchNormTrain', real);
if (opDef('BatchNormTrain') !== real) throw new Error('the BatchNormTrain rule was not restored');

const rng = new Rng(0);
const x = Tensor.f32([batch, 3, size, size]);
for (let i = 0; i < x.size; i++) (x.data as Float32Array)[i] = rng.normal();
const y = Tensor.i64(
  [batch],
  Array.from({ length: batch }, () => rng.int(10)),
);
const fullSizeMuls = (m: typeof plain.model) => lowered(m).graph.nodes.filter((n) => n.op === 'Mul' && n.name.startsWith('grad/')).length;
console.log(`grad Muls: without the fold ${fullSizeMuls(plain.model)}, with ${fullSizeMuls(folded.model)}`);
// --swap opens the folded step's session first (a check that the order of the sessions in memory is not the difference)
const runners = values.swap
  ? { folded: await StepRunner.create(folded), plain: await StepRunner.create(plain) }
  : { plain: await StepRunner.create(plain), folded: await StepRunner.create(folded) };
const cpu: Record<string, number[]> = { plain: [], folded: [] };
for (let r = 0; r < Number(values.rounds) + 2; r++)
  for (const [name, runner] of r % 2 ? Object.entries(runners).reverse() : Object.entries(runners)) {
    const c0 = process.cpuUsage();
    await runner.train({ x, y }, [0.01]);
    const c = process.cpuUsage(c0);
    if (r >= 2) cpu[name]!.push((c.user + c.system) / 1000); // the first two runs of a session fault its arena in
  }
const stats = (v: number[]) => {
  const s = [...v].sort((a, b) => a - b);
  return `median ${s[s.length >> 1]!.toFixed(0)}, mean ${(v.reduce((a, b) => a + b, 0) / v.length).toFixed(0)}, best ${s[0]!.toFixed(0)}`;
};
const wins = cpu.folded!.filter((v, i) => v < cpu.plain![i]!).length;
console.log(`${values.model} b${batch} ${size}px, CPU ms per step over ${cpu.plain!.length} interleaved rounds:`);
console.log(`  without the fold: ${stats(cpu.plain!)}`);
console.log(`  with the fold:    ${stats(cpu.folded!)}  (lower in ${wins} of ${cpu.plain!.length} rounds)`);
