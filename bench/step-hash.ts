/**
 * Hashes what a few training steps produce (every step's loss and all carried state: parameters, optimizer state, BN
 * running statistics), to show that a graph change is bit-identical: run it on two versions and compare the digests.
 * Usage: node --import tsx bench/step-hash.ts [--model nsfwjs:MobileNetV2 | --arch small|resnet18] [--size 224]
 *   [--batch 8] [--steps 3] [--optimizer sgd|adamw] [--list]
 */
import { createHash } from 'node:crypto';
import { parseArgs } from 'node:util';
import { linear, paramNames, resnet18, smallCNN } from '../src/nn/index.js';
import { adamw, sgd } from '../src/optim/index.js';
import { compileTrainStep } from '../src/step/compile.js';
import { StepRunner } from '../src/step/runner.js';
import { Rng, Tensor } from '../src/tensor.js';
import { Network } from '../src/train/network.js';

const { values } = parseArgs({
  options: {
    arch: { type: 'string', default: 'small' },
    model: { type: 'string', default: '' },
    size: { type: 'string', default: '' },
    batch: { type: 'string', default: '8' },
    steps: { type: 'string', default: '3' },
    optimizer: { type: 'string', default: 'sgd' },
    // print every tensor's digest too (to find which differ)
    list: { type: 'boolean', default: false },
  },
});
const batch = Number(values.batch);
const small = values.arch === 'small' && !values.model;
const size = Number(values.size) || (small ? 28 : 224);
const ch = small ? 1 : 3;
const model = values.model
  ? Network.load(values.model).replaceHead(linear(1280, 10), { seed: 0 }).model
  : small
    ? smallCNN({ classes: 10 }).build({ inputShape: ['N', 1, size, size], seed: 0 })
    : resnet18({ classes: 10 }).build({ inputShape: ['N', 3, size, size], seed: 0 });
const optimizer = values.optimizer === 'adamw' ? adamw({ lr: 1e-3, weightDecay: 1e-2 }) : sgd({ lr: 0.01, momentum: 0.9, weightDecay: 5e-4 });
const step = compileTrainStep({ model, trainable: paramNames(model), optimizer, recompute: { batchSize: batch } });
const runner = await StepRunner.create(step);
const rng = new Rng(0);
const all = createHash('sha256');
const losses: number[] = [];
for (let i = 0; i < Number(values.steps); i++) {
  const x = Tensor.f32([batch, ch, size, size]);
  for (let j = 0; j < x.size; j++) (x.data as Float32Array)[j] = rng.normal();
  const y = Tensor.i64(
    [batch],
    Array.from({ length: batch }, () => rng.int(10)),
  );
  const { loss } = await runner.train({ x, y }, [0.01]);
  losses.push(loss);
  all.update(new Uint8Array(Float32Array.of(loss).buffer));
}
const byKind = new Map<string, ReturnType<typeof createHash>>();
for (const kind of ['param', 'optim', 'bn'] as const) {
  const h = createHash('sha256');
  const state = runner.state([kind]);
  // state inputs carry the graph's fresh-name suffix (`…momentum_buffer__8696`), which moves when any node is added
  // before them: hashed by the stable part of the name
  const stable = (name: string) => name.replace(/__\d+$/, '');
  for (const name of [...state.keys()].sort((a, b) => stable(a).localeCompare(stable(b)))) {
    const t = state.get(name)!;
    const bytes = new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength);
    h.update(stable(name));
    h.update(bytes);
    all.update(stable(name));
    all.update(bytes);
    if (values.list) console.log(`  ${kind} ${stable(name)} ${createHash('sha256').update(bytes).digest('hex').slice(0, 16)}`);
  }
  byKind.set(`${kind} (${state.size})`, h);
}
console.log(`losses ${losses.map((l) => l.toPrecision(9)).join(' ')}`);
for (const [k, h] of byKind) console.log(`${k.padEnd(12)} ${h.digest('hex').slice(0, 16)}`);
console.log(`all          ${all.digest('hex')}`);
await runner.release();
