/** Parameter-free modules: activations, Dropout, pooling, Flatten, Identity. */
import type { Emitter } from '../ir/emit.js';
import { type Rng, Tensor } from '../tensor.js';
import { Module, scoped, where } from './module.js';

type Pair = number | [number, number];
const pair = (v: Pair): [number, number] => (Array.isArray(v) ? v : [v, v]);

/** A module whose forward is a fixed function of its input (no parameters). */
export class Lambda extends Module {
  constructor(
    readonly kind: string,
    private readonly fn: (e: Emitter, x: string, who: string) => string,
    private readonly repr = '',
  ) {
    super();
  }
  protected override extraRepr(): string {
    return this.repr;
  }
  emit(e: Emitter, x: string, prefix: string, _rng: Rng): string {
    return scoped(e, prefix, () => this.fn(e, x, where(this.kind, prefix)));
  }
}

/** `nn.ReLU()` → Relu. */
export const relu = () => new Lambda('ReLU', (e, x) => e.op('Relu', [x]));
/** `nn.ReLU6()` → Clip(x, 0, 6). */
export const relu6 = () => new Lambda('ReLU6', (e, x) => e.op('Clip', [x, e.scalar(0), e.scalar(6)]));
/** `nn.LeakyReLU(negative_slope=0.01)` → LeakyRelu(alpha). */
export const leakyRelu = (negativeSlope = 0.01) =>
  new Lambda('LeakyReLU', (e, x) => e.op('LeakyRelu', [x], { alpha: negativeSlope }), `negative_slope=${negativeSlope}`);
/** `nn.Sigmoid()`. */
export const sigmoid = () => new Lambda('Sigmoid', (e, x) => e.op('Sigmoid', [x]));
/** `nn.Tanh()`. */
export const tanh = () => new Lambda('Tanh', (e, x) => e.op('Tanh', [x]));

/**
 * `nn.GELU(approximate='none'|'tanh')`. Opset ≥ 20 emits the Gelu op; older opsets the formula
 * 0.5·x·(1 + erf(x/√2)) (or the tanh approximation), as torch.onnx exports it.
 */
export const gelu = (approximate: 'none' | 'tanh' = 'none') =>
  new Lambda(
    'GELU',
    (e, x) => {
      if (e.opset >= 20) return e.op('Gelu', [x], { approximate });
      let inner: string;
      if (approximate === 'tanh') {
        // tanh(√(2/π)·(x + 0.044715·x³))
        const cube = e.mul(e.mul(x, x), x);
        inner = e.op('Tanh', [e.mul(e.add(x, e.mul(cube, e.scalar(0.044715))), e.scalar(Math.sqrt(2 / Math.PI)))]);
      } else inner = e.op('Erf', [e.div(x, e.scalar(Math.SQRT2))]);
      return e.mul(e.mul(x, e.add(inner, e.scalar(1))), e.scalar(0.5));
    },
    `approximate='${approximate}'`,
  );

/** `nn.Dropout(p)` → Dropout(x, ratio=p); an identity at inference, the trainer switches it to training mode. */
export const dropout = (p = 0.5) => {
  if (!(p >= 0 && p < 1)) throw new Error(`Dropout(${p}): p must be in [0, 1).`);
  return new Lambda('Dropout', (e, x) => e.op('Dropout', [x, e.constTensor(Tensor.scalar(p), 'ratio')]), `p=${p}`);
};

/** Options of {@link maxPool2d} / {@link avgPool2d}. */
export interface PoolOptions {
  /** Default: the kernel size (PyTorch's default). */
  stride?: Pair;
  padding?: Pair;
  /** Use ceil instead of floor for the output size (default false). */
  ceilMode?: boolean;
  /** AvgPool2d only: count padded zeros in the average (PyTorch default true). */
  countIncludePad?: boolean;
}

function poolAttrs(kernel: Pair, o: PoolOptions): Record<string, number[] | number> {
  const k = pair(kernel);
  const [ph, pw] = pair(o.padding ?? 0);
  const attrs: Record<string, number[] | number> = { kernel_shape: k, strides: pair(o.stride ?? kernel), pads: [ph, pw, ph, pw] };
  if (o.ceilMode) attrs.ceil_mode = 1;
  return attrs;
}
function poolRepr(kernel: Pair, o: PoolOptions): string {
  return `kernel_size=${kernel}, stride=${o.stride ?? kernel}, padding=${o.padding ?? 0}`;
}
function need4d(e: Emitter, x: string, who: string): void {
  const r = e.rank(x);
  if (r !== undefined && r !== 4) throw new Error(`${who}: expects a 4-D input [N, C, H, W], got rank ${r} for "${x}". Pool before flattening.`);
}

/** `nn.MaxPool2d(kernel_size, stride=kernel_size, padding=0)` → MaxPool. */
export const maxPool2d = (kernel: Pair, opts: PoolOptions = {}) =>
  new Lambda(
    'MaxPool2d',
    (e, x, who) => {
      need4d(e, x, who);
      return e.op('MaxPool', [x], poolAttrs(kernel, opts));
    },
    poolRepr(kernel, opts),
  );

/** `nn.AvgPool2d(kernel_size, stride=kernel_size, padding=0, count_include_pad=True)` → AveragePool. */
export const avgPool2d = (kernel: Pair, opts: PoolOptions = {}) =>
  new Lambda(
    'AvgPool2d',
    (e, x, who) => {
      need4d(e, x, who);
      const attrs = poolAttrs(kernel, opts);
      if (opts.padding && opts.countIncludePad !== false) attrs.count_include_pad = 1;
      return e.op('AveragePool', [x], attrs);
    },
    poolRepr(kernel, opts),
  );

/** Global average pooling over H and W: [N, C, H, W] → [N, C, 1, 1] (GlobalAveragePool). */
export const globalAvgPool = () =>
  new Lambda('GlobalAvgPool', (e, x, who) => {
    need4d(e, x, who);
    return e.op('GlobalAveragePool', [x]);
  });

/**
 * `nn.AdaptiveAvgPool2d(outputSize)`. Size 1 (or [1, 1]) is GlobalAveragePool; other sizes need a
 * static input whose H and W are multiples of the output size (emitted as AveragePool).
 */
export const adaptiveAvgPool2d = (outputSize: Pair = 1) => {
  const [oh, ow] = pair(outputSize);
  return new Lambda(
    'AdaptiveAvgPool2d',
    (e, x, who) => {
      need4d(e, x, who);
      if (oh === 1 && ow === 1) return e.op('GlobalAveragePool', [x]);
      const s = e.shape(x);
      const h = s?.[2];
      const w = s?.[3];
      if (typeof h !== 'number' || typeof w !== 'number' || h % oh || w % ow)
        throw new Error(
          `${who}: output size (${oh}, ${ow}) needs a static input size divisible by it; "${x}" has shape [${s?.join(', ') ?? 'unknown'}]. Use output size 1, or resize the input.`,
        );
      const k = [h / oh, w / ow];
      return e.op('AveragePool', [x], { kernel_shape: k, strides: k });
    },
    `output_size=(${oh}, ${ow})`,
  );
};

/**
 * `nn.Flatten(start_dim=1)`: keeps dims before `startDim`, merges the rest. Emitted as Flatten(axis=1)
 * for the default, else as Reshape to [0, …, 0, -1].
 */
export const flatten = (startDim = 1) =>
  new Lambda(
    'Flatten',
    (e, x) => (startDim === 1 ? e.op('Flatten', [x], { axis: 1 }) : e.op('Reshape', [x, e.ints([...Array(startDim).fill(0), -1])])),
    `start_dim=${startDim}, end_dim=-1`,
  );

/** `nn.Identity()`: returns its input unchanged (no node). */
export const identity = () => new Lambda('Identity', (_e, x) => x);
