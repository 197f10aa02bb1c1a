/**
 * --device: sessions run on the CPU by default, and on WebGPU only when asked; a device that cannot be used is one
 * clear error, never a silent fall back to the CPU.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { defaultDevice, executionProviders, listBackends, parseDevice, setDefaultDevice } from '../../src/runtime/device.js';
import { createSession, ortSessionOptions, runHost } from '../../src/runtime/session.js';
import { Tensor } from '../../src/tensor.js';
import { buildModel } from '../onnx/helpers.js';

test('the device default: setDefaultDevice, then GRAFT_DEVICE, then cpu; an unknown name is refused with the choices', () => {
  const saved = process.env.GRAFT_DEVICE;
  try {
    delete process.env.GRAFT_DEVICE;
    assert.equal(defaultDevice(), 'cpu');
    process.env.GRAFT_DEVICE = 'webgpu';
    assert.equal(defaultDevice(), 'webgpu');
    setDefaultDevice('cpu');
    assert.equal(defaultDevice(), 'cpu');
    setDefaultDevice(undefined);
    process.env.GRAFT_DEVICE = 'cuda';
    assert.throws(() => defaultDevice(), /GRAFT_DEVICE "cuda" is not a device graft knows; use one of: cpu, webgpu/);
    assert.throws(() => parseDevice('gpu'), /--device "gpu" is not a device graft knows/);
  } finally {
    setDefaultDevice(undefined);
    if (saved === undefined) delete process.env.GRAFT_DEVICE;
    else process.env.GRAFT_DEVICE = saved;
  }
});

test('session options name exactly the asked provider, so onnxruntime cannot fall back to another device', () => {
  assert.deepEqual(ortSessionOptions({ device: 'cpu' }).executionProviders, ['cpu']);
  assert.ok(listBackends().some((b) => b.name === 'cpu' && b.bundled));
  if (listBackends().some((b) => b.name === 'webgpu' && b.bundled)) assert.deepEqual(ortSessionOptions({ device: 'webgpu' }).executionProviders, ['webgpu']);
  else assert.throws(() => executionProviders('webgpu'), /no bundled webgpu provider/);
});

test('--device webgpu either runs the model with the CPU result or fails with one clear error that refuses to fall back', async () => {
  const model = buildModel();
  const x = Tensor.f32([2, 4], [0.1, -0.2, 0.3, 0.4, 1, 2, -3, 0.5]);
  const cpu = (await runHost(await createSession(model, { device: 'cpu' }), { x })).y;
  let gpu: Tensor | undefined;
  try {
    gpu = (await runHost(await createSession(model, { device: 'webgpu' }), { x })).y;
  } catch (e) {
    const msg = (e as Error).message;
    assert.match(msg, /^--device webgpu: /);
    assert.match(msg, /does not fall back to the CPU/);
    assert.match(msg, /--device cpu/);
    assert.doesNotMatch(msg, /\n/, 'one line');
  }
  if (gpu) {
    // a machine with a WebGPU adapter: the same numbers as the CPU's
    assert.deepEqual(gpu.dims, cpu.dims);
    for (let i = 0; i < cpu.data.length; i++) assert.ok(Math.abs(Number(gpu.data[i]) - Number(cpu.data[i])) < 1e-4);
  }
});

test('graft --device takes only the devices it knows', () => {
  const bin = fileURLToPath(new URL('../../bin/graft.js', import.meta.url));
  const r = spawnSync(process.execPath, [bin, '--device', 'cuda', 'inspect', 'x.onnx'], {
    encoding: 'utf8',
    env: { ...process.env, GRAFT_FROM_SOURCE: '1' },
  });
  assert.equal(r.status, 1);
  assert.match(r.stderr, /--device <name>' argument 'cuda' is invalid\. Allowed choices are cpu, webgpu/);
});
