/**
 * Times a training step on each device graft can use (cpu, webgpu): ResNet-18 (224 px, batch 16) and MobileNetV2
 * (nsfwjs import, 224 px, batch 8), fwd + bwd + SGD momentum, the same compiled step on each device.
 * A device that cannot be used is printed with graft's own error, never replaced by the CPU.
 * Usage: node --import tsx bench/device-check.ts [--iters 5] [--models resnet18,mobilenetv2] [--devices cpu,webgpu]
 */
import { parseArgs } from 'node:util';
import { linear, paramNames, resnet18 } from '../src/nn/index.js';
import { sgd } from '../src/optim/index.js';
import { type Device, listBackends, parseDevice } from '../src/runtime/device.js';
import { compileTrainStep } from '../src/step/compile.js';
import { StepRunner } from '../src/step/runner.js';
import { Rng, Tensor } from '../src/tensor.js';
import { Network } from '../src/train/network.js';

const { values } = parseArgs({
  options: {
    iters: { type: 'string', default: '5' },
    models: { type: 'string', default: 'resnet18,mobilenetv2' },
    devices: { type: 'string', default: 'cpu,webgpu' },
  },
});
const iters = Number(values.iters);
const devices = values.devices.split(',').map((d) => parseDevice(d.trim()));
console.log(
  `onnxruntime backends: ${listBackends()
    .map((b) => `${b.name}${b.bundled ? '' : ' (not bundled)'}`)
    .join(', ')}`,
);

const MODELS = {
  resnet18: { batch: 16, build: () => resnet18({ classes: 1000 }).build({ inputShape: ['N', 3, 224, 224], seed: 0 }) },
  mobilenetv2: { batch: 8, build: () => Network.load('nsfwjs:MobileNetV2').replaceHead(linear(1280, 10), { seed: 0 }).model },
};

const rows: string[] = [];
for (const name of values.models.split(',').map((m) => m.trim()) as (keyof typeof MODELS)[]) {
  const spec = MODELS[name];
  if (!spec) throw new Error(`--models: unknown model ${name}; use resnet18 and/or mobilenetv2.`);
  const model = spec.build();
  const step = compileTrainStep({ model, trainable: paramNames(model), optimizer: sgd({ lr: 0.01, momentum: 0.9, weightDecay: 5e-4 }) });
  const rng = new Rng(0);
  const x = Tensor.f32([spec.batch, 3, 224, 224]);
  for (let i = 0; i < x.size; i++) (x.data as Float32Array)[i] = rng.normal();
  const y = Tensor.i64(
    [spec.batch],
    Array.from({ length: spec.batch }, () => rng.int(10)),
  );
  const times: Partial<Record<Device, number>> = {};
  for (const device of devices) {
    try {
      const t0 = performance.now();
      const runner = await StepRunner.create(step, undefined, { device });
      const open = performance.now() - t0;
      await runner.train({ x, y }, [0.01]); // warm-up
      const t1 = performance.now();
      for (let i = 0; i < iters; i++) await runner.train({ x, y }, [0.01]);
      times[device] = (performance.now() - t1) / iters;
      rows.push(`| ${name} b${spec.batch} | ${device} | ${times[device]!.toFixed(1)} ms/step | session ${open.toFixed(0)} ms |`);
    } catch (e) {
      rows.push(`| ${name} b${spec.batch} | ${device} | — | ${(e as Error).message.split('\n')[0]} |`);
    }
  }
  if (times.cpu && times.webgpu) rows.push(`| ${name} b${spec.batch} | webgpu vs cpu | ${(times.cpu / times.webgpu).toFixed(2)}× | |`);
}
console.log('| model | device | step | note |\n|---|---|---|---|');
for (const r of rows) console.log(r);
