/**
 * Non-spatial Keras layers → ONNX: Dense, BatchNormalization, LayerNormalization, activation layers, merge
 * layers, Flatten/Reshape/Permute, Dropout-like layers and Rescaling. Each keeps or converts the layout of its
 * input as described in keras-context.ts.
 */
import { Tensor } from '../tensor.js';
import { activate, commonLayout, type KValue, kerasAxis, kerasShape, type LayerConverter, type LayerCtx } from './keras-context.js';

/** Dense on the last Keras axis: Gemm for rank-2 inputs, MatMul + Add otherwise; then its activation. */
export const dense: LayerConverter = (ctx, [x]) => {
  const X = ctx.keras(x!);
  const K = ctx.weight('kernel');
  const inDim = ctx.e.shape(X)?.at(-1);
  if (K.dims.length !== 2 || (typeof inDim === 'number' && K.dims[0] !== inDim) || K.dims[1] !== ctx.layer.config.units)
    throw new Error(
      `${ctx.where}: kernel has shape [${K.dims.join(', ')}] but the layer maps ${inDim ?? '?'} inputs to ${ctx.layer.config.units} units. The weights do not belong to this topology; re-export the model.`,
    );
  const W = ctx.init('kernel', () => K);
  const useBias = ctx.layer.config.use_bias !== false;
  let y: string;
  if (ctx.e.rank(X) === 2) y = ctx.e.op('Gemm', useBias ? [X, W, ctx.init('bias', () => ctx.weight('bias'))] : [X, W]);
  else {
    y = ctx.e.op('MatMul', [X, W]);
    if (useBias)
      y = ctx.e.add(
        y,
        ctx.init('bias', () => ctx.weight('bias')),
      );
  }
  return activate(ctx, { name: y, layout: 'keras' }, ctx.layer.config.activation);
};

function singleAxis(ctx: LayerCtx): number {
  const a = ctx.layer.config.axis ?? -1;
  const axis = Array.isArray(a) ? (a.length === 1 ? a[0] : Number.NaN) : a;
  if (typeof axis !== 'number' || Number.isNaN(axis))
    throw new Error(`${ctx.where}: axis ${JSON.stringify(a)} is not supported (normalisation over one axis only). Use a single axis.`);
  return axis;
}

/** Shape that broadcasts a per-channel vector along ONNX axis `axis` of a rank-`rank` value. */
function along(axis: number, rank: number, n: number): number[] {
  return Array.from({ length: rank - axis }, (_, i) => (i === 0 ? n : 1));
}

/** BatchNormalization (inference): ONNX BatchNormalization on the channel axis, else a folded scale and shift. */
export const batchNorm: LayerConverter = (ctx, [x]) => {
  const c = ctx.layer.config;
  const eps = Number(c.epsilon ?? 1e-3);
  const mean = ctx.weight('moving_mean');
  const variance = ctx.weight('moving_variance');
  const n = mean.size;
  const gamma = c.scale === false ? undefined : ctx.weight('gamma');
  const beta = c.center === false ? undefined : ctx.weight('beta');
  const axisK = singleAxis(ctx);
  const rank = ctx.e.rank(x!.name);
  // rank-4 channel axis → NCHW; rank-2 feature axis: both are ONNX BatchNormalization's axis 1
  let v: KValue = x!;
  if (rank === 4 && kerasAxis(ctx, { name: x!.name, layout: 'keras' }, axisK) === 3) v = { name: ctx.nchw(x!), layout: 'nchw' };
  else v = { name: ctx.keras(x!), layout: 'keras' };
  const axis = kerasAxis(ctx, v, axisK);
  if (axis === 1) {
    const g = ctx.init('gamma', () => gamma ?? Tensor.f32([n], new Float32Array(n).fill(1)));
    const b = ctx.init('beta', () => beta ?? Tensor.f32([n]));
    const m = ctx.init('moving_mean', () => mean);
    const s = ctx.init('moving_variance', () => variance);
    return { name: ctx.e.op('BatchNormalization', [v.name, g, b, m, s], { epsilon: eps }), layout: v.layout };
  }
  const a = new Float32Array(n);
  const sh = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    a[i] = (gamma ? Number(gamma.data[i]) : 1) / Math.sqrt(Number(variance.data[i]) + eps);
    sh[i] = (beta ? Number(beta.data[i]) : 0) - Number(mean.data[i]) * a[i]!;
  }
  const shape = along(axis, ctx.e.rank(v.name)!, n);
  const y = ctx.e.add(
    ctx.e.mul(
      v.name,
      ctx.init('scale_folded', () => Tensor.f32(shape, a)),
    ),
    ctx.init('shift_folded', () => Tensor.f32(shape, sh)),
  );
  return { name: y, layout: v.layout };
};

/** LayerNormalization over the last Keras axis (ONNX LayerNormalization). */
export const layerNorm: LayerConverter = (ctx, [x]) => {
  const c = ctx.layer.config;
  const X = ctx.keras(x!);
  const r = ctx.e.rank(X);
  const axis = singleAxis(ctx);
  if (r === undefined || (axis !== -1 && axis !== r - 1))
    throw new Error(`${ctx.where}: LayerNormalization over axis ${axis} is not supported (only the last axis). Normalise over the last axis.`);
  const n = ctx.e.shape(X)!.at(-1) as number;
  const g = ctx.init('gamma', () => (c.scale === false ? Tensor.f32([n], new Float32Array(n).fill(1)) : ctx.weight('gamma')));
  const b = ctx.init('beta', () => (c.center === false ? Tensor.f32([n]) : ctx.weight('beta')));
  return { name: ctx.e.op('LayerNormalization', [X, g, b], { axis: -1, epsilon: Number(c.epsilon ?? 1e-3) }), layout: 'keras' };
};

/** Activation layer. */
export const activation: LayerConverter = (ctx, [x]) => activate(ctx, x!, ctx.layer.config.activation);

/** ReLU layer: max_value → Clip (ReLU6), negative_slope → LeakyRelu; threshold must be 0. */
export const relu: LayerConverter = (ctx, [x]) => {
  const c = ctx.layer.config;
  const slope = Number(c.negative_slope ?? 0);
  if (Number(c.threshold ?? 0) !== 0)
    throw new Error(`${ctx.where}: ReLU threshold ${c.threshold} is not supported (only 0). Use threshold 0 or re-train without it.`);
  const e = ctx.e;
  const max = c.max_value === null || c.max_value === undefined ? undefined : Number(c.max_value);
  let y: string;
  if (slope === 0) y = max === undefined ? e.op('Relu', [x!.name]) : e.op('Clip', [x!.name, e.scalar(0), e.scalar(max)]);
  else {
    y = e.op('LeakyRelu', [x!.name], { alpha: slope });
    if (max !== undefined) y = e.op('Clip', [y, '', e.scalar(max)]);
  }
  return { name: y, layout: x!.layout };
};

/** LeakyReLU layer (alpha, or Keras 3's negative_slope; default 0.3). */
export const leakyRelu: LayerConverter = (ctx, [x]) => {
  const alpha = Number(ctx.layer.config.alpha ?? ctx.layer.config.negative_slope ?? 0.3);
  return { name: ctx.e.op('LeakyRelu', [x!.name], { alpha }), layout: x!.layout };
};

/** ELU layer. */
export const elu: LayerConverter = (ctx, [x]) => ({ name: ctx.e.op('Elu', [x!.name], { alpha: Number(ctx.layer.config.alpha ?? 1) }), layout: x!.layout });

/** PReLU layer: the per-element alpha (Keras layout, shared axes of size 1) is re-laid out for NCHW values. */
export const prelu: LayerConverter = (ctx, [x]) => {
  const alpha = ctx.weight('alpha');
  const slope = x!.layout === 'nchw' && alpha.dims.length === 3 ? permuteHWC(alpha) : alpha;
  return { name: ctx.e.op('PRelu', [x!.name, ctx.init('alpha', () => slope)]), layout: x!.layout };
};

function permuteHWC(t: Tensor): Tensor {
  const [h, w, c] = t.dims as [number, number, number];
  const out = new Float32Array(t.size);
  for (let i = 0; i < h; i++) for (let j = 0; j < w; j++) for (let k = 0; k < c; k++) out[(k * h + i) * w + j] = t.data[(i * w + j) * c + k] as number;
  return Tensor.f32([c, h, w], out);
}

/** Softmax layer (axis, default -1). */
export const softmax: LayerConverter = (ctx, [x]) => {
  const axis = singleAxis(ctx);
  return { name: ctx.e.op('Softmax', [x!.name], { axis: kerasAxis(ctx, x!, axis) }), layout: x!.layout };
};

function merge(kind: 'Add' | 'Sub' | 'Mul' | 'Max' | 'Min' | 'Average'): LayerConverter {
  return (ctx, inputs) => {
    if (inputs.length < 2) throw new Error(`${ctx.where}: a merge layer needs at least 2 inputs, got ${inputs.length}. Fix the model's connections.`);
    const ins = commonLayout(ctx, inputs);
    const op = kind === 'Average' ? 'Add' : kind;
    let y = ins[0]!.name;
    for (const v of ins.slice(1)) y = ctx.e.op(op, [y, v.name]);
    if (kind === 'Average') y = ctx.e.mul(y, ctx.e.scalar(1 / ins.length));
    return { name: y, layout: ins[0]!.layout };
  };
}

/** Add / Subtract / Multiply / Average / Maximum / Minimum. */
export const mergeLayers: Record<string, LayerConverter> = {
  Add: merge('Add'),
  Subtract: merge('Sub'),
  Multiply: merge('Mul'),
  Average: merge('Average'),
  Maximum: merge('Max'),
  Minimum: merge('Min'),
};

/** Concatenate along a Keras axis (default -1). */
export const concatenate: LayerConverter = (ctx, inputs) => {
  const ins = commonLayout(ctx, inputs);
  const axis = kerasAxis(ctx, ins[0]!, Number(ctx.layer.config.axis ?? -1));
  return {
    name: ctx.e.op(
      'Concat',
      ins.map((v) => v.name),
      { axis },
    ),
    layout: ins[0]!.layout,
  };
};

/** Flatten in Keras (NHWC) element order: a Transpose back to NHWC first unless H·W = 1. */
export const flatten: LayerConverter = (ctx, [x]) => {
  const s = ctx.e.shape(x!.name);
  const trivial = x!.layout === 'nchw' && s?.[2] === 1 && s?.[3] === 1;
  const X = trivial ? x!.name : ctx.keras(x!);
  return { name: ctx.e.op('Flatten', [X], { axis: 1 }), layout: 'keras' };
};

/** Reshape (target_shape excludes the batch axis; one -1 allowed), in Keras element order. */
export const reshape: LayerConverter = (ctx, [x]) => {
  const target = ctx.layer.config.target_shape;
  if (!Array.isArray(target)) throw new Error(`${ctx.where}: Reshape has no target_shape. Fix the layer config.`);
  const shape = ctx.e.ints([0, ...target.map((d: number | null) => (d === null ? -1 : d))]);
  return { name: ctx.e.op('Reshape', [ctx.keras(x!), shape]), layout: 'keras' };
};

/** Permute (dims are 1-based and exclude the batch axis). */
export const permuteLayer: LayerConverter = (ctx, [x]) => {
  const dims = ctx.layer.config.dims as number[];
  return { name: ctx.e.transpose(ctx.keras(x!), [0, ...dims]), layout: 'keras' };
};

/** Dropout → ONNX Dropout (identity at inference; graft's trainer applies it while fine-tuning). */
export const dropout: LayerConverter = (ctx, [x]) => {
  const rate = Number(ctx.layer.config.rate ?? 0);
  if (!(rate > 0 && rate < 1)) return x!;
  return { name: ctx.e.op('Dropout', [x!.name, ctx.e.constTensor(Tensor.scalar(rate), 'ratio')]), layout: x!.layout };
};

/** Layers that are the identity at inference. */
export const identity: LayerConverter = (_ctx, [x]) => x!;

/** Rescaling: x · scale + offset (scalars, or per-channel vectors on the last Keras axis). */
export const rescaling: LayerConverter = (ctx, [x]) => {
  const c = ctx.layer.config;
  const vec = (v: unknown, def: number, key: string): string => {
    const arr = typeof v === 'number' ? [v] : Array.isArray(v) ? (v as number[]) : [def];
    if (arr.length === 1) return ctx.e.scalar(arr[0]!);
    const shape = x!.layout === 'nchw' ? [arr.length, 1, 1] : [arr.length];
    const C = kerasShape(ctx, x!)?.at(-1);
    if (typeof C === 'number' && C !== arr.length) throw new Error(`${ctx.where}: ${key} has ${arr.length} values for ${C} channels. Fix the layer config.`);
    return ctx.init(key, () => Tensor.f32(shape, arr));
  };
  let y = ctx.e.mul(x!.name, vec(c.scale, 1, 'scale'));
  if (c.offset !== undefined && c.offset !== 0) y = ctx.e.add(y, vec(c.offset, 0, 'offset'));
  return { name: y, layout: x!.layout };
};
