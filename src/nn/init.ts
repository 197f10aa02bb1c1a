/**
 * Parameter initializers with PyTorch's default distributions, drawn from graft's seeded {@link Rng}
 * so a `build({ seed })` is reproducible. The streams differ from PyTorch's (different PRNG); the
 * distributions are the same.
 */
import { type Rng, Tensor } from '../tensor.js';

/** Fan-in and fan-out of a weight, as `torch.nn.init._calculate_fan_in_and_fan_out` computes them. */
export function fans(dims: readonly number[]): { fanIn: number; fanOut: number } {
  if (dims.length < 2) throw new Error(`fans: a weight of shape [${dims.join(', ')}] has no fan-in/fan-out; it needs at least 2 dimensions.`);
  let receptive = 1;
  for (let i = 2; i < dims.length; i++) receptive *= dims[i]!;
  return { fanIn: dims[1]! * receptive, fanOut: dims[0]! * receptive };
}

/** Gain of a leaky ReLU with negative slope `a` (`torch.nn.init.calculate_gain('leaky_relu', a)`). */
export function leakyReluGain(a: number): number {
  return Math.sqrt(2 / (1 + a * a));
}

/** A float32 tensor with entries uniform in [lo, hi). */
export function uniform(rng: Rng, dims: readonly number[], lo: number, hi: number): Tensor {
  const t = Tensor.f32(dims);
  const d = t.data as Float32Array;
  for (let i = 0; i < d.length; i++) d[i] = lo + (hi - lo) * rng.next();
  return t;
}

/** A float32 tensor with entries drawn from N(mean, std²). */
export function normal(rng: Rng, dims: readonly number[], mean: number, std: number): Tensor {
  const t = Tensor.f32(dims);
  const d = t.data as Float32Array;
  for (let i = 0; i < d.length; i++) d[i] = mean + std * rng.normal();
  return t;
}

/** A float32 tensor filled with `v`. */
export function full(dims: readonly number[], v: number): Tensor {
  const t = Tensor.f32(dims);
  (t.data as Float32Array).fill(v);
  return t;
}

/**
 * `torch.nn.init.kaiming_uniform_(w, a)` with fan-in mode: U(±gain·√(3/fan_in)).
 * With a = √5 (PyTorch's Linear/Conv default) this is U(±1/√fan_in).
 */
export function kaimingUniform(rng: Rng, dims: readonly number[], a = Math.sqrt(5)): Tensor {
  const { fanIn } = fans(dims);
  const bound = leakyReluGain(a) * Math.sqrt(3 / fanIn);
  return uniform(rng, dims, -bound, bound);
}

/** `torch.nn.init.kaiming_normal_(w, mode, nonlinearity='relu')`: N(0, 2/fan). torchvision's ResNets use mode 'fan_out'. */
export function kaimingNormal(rng: Rng, dims: readonly number[], mode: 'fan_in' | 'fan_out' = 'fan_in'): Tensor {
  const f = fans(dims);
  const std = leakyReluGain(0) / Math.sqrt(mode === 'fan_in' ? f.fanIn : f.fanOut);
  return normal(rng, dims, 0, std);
}

/** PyTorch's default bias init for Linear/Conv: U(±1/√fan_in) where fan_in is the weight's. */
export function defaultBias(rng: Rng, weightDims: readonly number[], n: number): Tensor {
  const { fanIn } = fans(weightDims);
  const bound = fanIn > 0 ? 1 / Math.sqrt(fanIn) : 0;
  return uniform(rng, [n], -bound, bound);
}
