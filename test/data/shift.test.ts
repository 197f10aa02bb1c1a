import assert from 'node:assert/strict';
import { test } from 'node:test';
import { bilinearResize, styleShift, textureField } from '../../src/data/shift.js';
import { TorchRand } from '../../src/data/torch-rand.js';
import { Rng } from '../../src/tensor.js';

const close = (a: ArrayLike<number>, b: number[], tol = 1e-6) => {
  assert.equal(a.length, b.length);
  for (let i = 0; i < b.length; i++) assert.ok(Math.abs(a[i]! - b[i]!) < tol, `index ${i}: ${a[i]} vs ${b[i]}`);
};

test('bilinear 2x2 -> 4x4 matches PyTorch F.interpolate(align_corners=False)', () => {
  // torch.nn.functional.interpolate(torch.tensor([[[[1.,2.],[3.,4.]]]]), size=(4,4), mode='bilinear', align_corners=False)
  const out = bilinearResize([1, 2, 3, 4], 2, 2, 4, 4);
  close(out, [1, 1.25, 1.75, 2, 1.5, 1.75, 2.25, 2.5, 2.5, 2.75, 3.25, 3.5, 3, 3.25, 3.75, 4]);
});

test('bilinear non-integer ratio 1x3 -> 1x5 (clamped edges, hand-computed)', () => {
  // src x = (d + 0.5) * 0.6 - 0.5 = [-0.2→0, 0.4, 1.0, 1.6, 2.2→clamp]
  close(bilinearResize([0, 10, 20], 1, 3, 1, 5), [0, 4, 10, 16, 20], 1e-5);
  // identity when sizes match
  close(bilinearResize([5, 6, 7, 8], 2, 2, 2, 2), [5, 6, 7, 8]);
  assert.throws(() => bilinearResize([1, 2, 3], 2, 2, 4, 4), /needs 4/);
});

test('texture field: 7x7 -> 28x28, values in [0,1), consumes 49 draws', () => {
  const rng = new Rng(3);
  const t = textureField(rng);
  assert.equal(t.length, 784);
  assert.ok(t.every((v) => v >= 0 && v < 1));
  const ref = new Rng(3);
  for (let i = 0; i < 49; i++) ref.next();
  assert.equal(rng.state, ref.state);
});

test('style shift: deterministic per seed, differs across seeds, stays in [0,1]', () => {
  const rng = new Rng(1);
  const n = 5;
  const x = Float32Array.from({ length: n * 784 }, () => rng.next());
  const a = styleShift(x, { seed: 42 });
  const b = styleShift(x, { seed: 42 });
  const c = styleShift(x, { seed: 43 });
  assert.deepEqual(a, b);
  assert.notDeepEqual(a, c);
  assert.ok(a.every((v) => v >= 0 && v <= 1));
  // a blank image becomes its texture field; different images get different fields
  const blank = styleShift(new Float32Array(2 * 784), { seed: 7 });
  const tex = textureField(new TorchRand(7));
  close(blank.subarray(0, 784), Array.from(tex));
  assert.notDeepEqual(blank.subarray(0, 784), blank.subarray(784));
  assert.throws(() => styleShift(new Float32Array(100), { seed: 1 }), /not a whole number of 28x28/);
});

test("TorchRand is MT19937: the C++ standard's known answer (10000th output for seed 5489 is 4123659995)", () => {
  const r = new TorchRand(5489);
  let v = 0;
  for (let i = 0; i < 10000; i++) v = r.nextU32();
  assert.equal(v, 4123659995);
  assert.throws(() => new TorchRand(-1), /non-negative seed/);
});

test('TorchRand reproduces torch.rand of torch.Generator().manual_seed(s) (values recorded from torch 1.13)', () => {
  const r = new TorchRand(123);
  close(
    Array.from({ length: 5 }, () => r.next()),
    [0.29611194133758545, 0.516562283039093, 0.2516707181930542, 0.6885567903518677, 0.07397246360778809],
    1e-12,
  );
  // the whole stream the reference's target test set consumes: torch.rand(10000, 1, 7, 7, generator=manual_seed(456)).sum()
  const t = new TorchRand(456);
  let sum = 0;
  let last = 0;
  for (let i = 0; i < 10000 * 49; i++) sum += last = t.next();
  assert.equal(last, 0.7608366012573242);
  assert.ok(Math.abs(sum - 245079.594762) < 1e-5, `sum ${sum}`);
});

test("style-shift textures equal the PyTorch reference's (F.interpolate of torch.rand, seed 123, image 1)", () => {
  const blank = styleShift(new Float32Array(2 * 784), { seed: 123 });
  const at = (y: number, x: number) => blank[784 + y * 28 + x]!;
  close([at(0, 0), at(5, 9), at(13, 20), at(27, 27)], [0.8057464, 0.5842198, 0.5336111, 0.8363296], 2e-7);
});
