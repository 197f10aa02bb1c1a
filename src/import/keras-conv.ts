/**
 * Spatial Keras layers → ONNX, computed in NCHW: Conv2D, DepthwiseConv2D, SeparableConv2D, pooling, global
 * pooling and ZeroPadding2D. Kernels are re-laid out on the host (HWIO → OIHW; depthwise HWCM → (C·M)1HW),
 * and TensorFlow's SAME padding becomes explicit pads (asymmetric — the extra pixel at the end — for even
 * kernels or strides that do not divide the input).
 */
import type { AttrValue, Dim } from '../ir/graph.js';
import { Tensor } from '../tensor.js';
import { activate, type KValue, type LayerConverter, type LayerCtx, pair, permute, requireChannelsLast } from './keras-context.js';

/**
 * Explicit ONNX pads [top, left, bottom, right] for a window op, or undefined when the spatial size is unknown
 * and SAME padding must stay symbolic (then the caller uses auto_pad SAME_UPPER, which is TF's rule).
 */
export function windowPads(
  ctx: LayerCtx,
  shape: Dim[] | undefined,
  kernel: [number, number],
  strides: [number, number],
  dilations: [number, number],
): number[] | undefined {
  return samePads(String(ctx.layer.config.padding ?? 'valid'), ctx.where, shape, kernel, strides, dilations);
}

/**
 * TensorFlow's padding rule for an NCHW input: VALID → zeros; SAME → total = max((⌈L/s⌉−1)·s + (k−1)·d + 1 − L, 0)
 * split with the odd pixel at the end. Undefined for SAME when a spatial size is not static.
 */
export function samePads(
  padding: string,
  where: string,
  shape: Dim[] | undefined,
  kernel: [number, number],
  strides: [number, number],
  dilations: [number, number],
): number[] | undefined {
  const p = padding.toLowerCase();
  if (p === 'valid') return [0, 0, 0, 0];
  if (p !== 'same') throw new Error(`${where}: padding "${padding}" is not supported (only "valid" and "same"). Change the layer's padding.`);
  const before: number[] = [];
  const after: number[] = [];
  for (let i = 0; i < 2; i++) {
    const L = shape?.[2 + i];
    if (typeof L !== 'number') return undefined;
    const eff = (kernel[i]! - 1) * dilations[i]! + 1;
    const out = Math.ceil(L / strides[i]!);
    const total = Math.max((out - 1) * strides[i]! + eff - L, 0);
    before.push(Math.floor(total / 2));
    after.push(total - Math.floor(total / 2));
  }
  return [...before, ...after];
}

/** Conv/pool attributes with explicit pads, or auto_pad SAME_UPPER when they are not static. */
export function windowAttrs(pads: number[] | undefined, extra: Record<string, AttrValue>): Record<string, AttrValue> {
  return pads ? { ...extra, pads } : { ...extra, auto_pad: 'SAME_UPPER' };
}

function convGeometry(ctx: LayerCtx): { kernel: [number, number]; strides: [number, number]; dilations: [number, number] } {
  const c = ctx.layer.config;
  return {
    kernel: pair(c.kernel_size, 'kernel_size', ctx.where),
    strides: pair(c.strides ?? 1, 'strides', ctx.where),
    dilations: pair(c.dilation_rate ?? 1, 'dilation_rate', ctx.where),
  };
}

function checkKernel(ctx: LayerCtx, key: string, k: Tensor, want: (number | undefined)[]): void {
  const bad = k.dims.length !== want.length || want.some((d, i) => d !== undefined && d !== k.dims[i]);
  if (bad)
    throw new Error(
      `${ctx.where}: weight "${key}" has shape [${k.dims.join(', ')}] but the layer config needs [${want.map((d) => d ?? '?').join(', ')}]. The weights do not belong to this topology; re-export the model.`,
    );
}

function bias(ctx: LayerCtx, inputs: string[]): string[] {
  if (ctx.layer.config.use_bias === false) return inputs;
  return [...inputs, ctx.init('bias', () => ctx.weight('bias'))];
}

/** Conv2D (groups, dilation, SAME/VALID) with its activation. */
export const conv2d: LayerConverter = (ctx, [x]) => {
  requireChannelsLast(ctx);
  const { kernel, strides, dilations } = convGeometry(ctx);
  const X = ctx.nchw(x!);
  const K = ctx.weight('kernel');
  const groups = Number(ctx.layer.config.groups ?? 1);
  checkKernel(ctx, 'kernel', K, [kernel[0], kernel[1], undefined, ctx.layer.config.filters]);
  const W = ctx.init('kernel', () => permute(K, [3, 2, 0, 1]));
  const pads = windowPads(ctx, ctx.e.shape(X), kernel, strides, dilations);
  const y = ctx.e.op('Conv', bias(ctx, [X, W]), windowAttrs(pads, { kernel_shape: kernel, strides, dilations, group: groups }));
  return activate(ctx, { name: y, layout: 'nchw' }, ctx.layer.config.activation);
};

/** HWCM depthwise kernel → ONNX [(C·M), 1, H, W] (TF's output channel c·M + m is ONNX group c's m-th output). */
export function depthwiseWeight(K: Tensor): Tensor {
  const [kh, kw, c, m] = K.dims as [number, number, number, number];
  const t = permute(K, [2, 3, 0, 1]);
  return new Tensor('float32', [c * m, 1, kh, kw], t.data);
}

function depthwise(ctx: LayerCtx, X: string, key: string): string {
  const { kernel, strides, dilations } = convGeometry(ctx);
  const K = ctx.weight(key);
  const C = ctx.e.shape(X)?.[1];
  checkKernel(ctx, key, K, [kernel[0], kernel[1], typeof C === 'number' ? C : undefined, undefined]);
  const W = ctx.init(key, () => depthwiseWeight(K));
  const pads = windowPads(ctx, ctx.e.shape(X), kernel, strides, dilations);
  const inputs = key === 'depthwise_kernel' && ctx.layer.className === 'DepthwiseConv2D' ? bias(ctx, [X, W]) : [X, W];
  return ctx.e.op('Conv', inputs, windowAttrs(pads, { kernel_shape: kernel, strides, dilations, group: K.dims[2]! }));
}

/** DepthwiseConv2D (depth_multiplier ≥ 1) with its activation. */
export const depthwiseConv2d: LayerConverter = (ctx, [x]) => {
  requireChannelsLast(ctx);
  const y = depthwise(ctx, ctx.nchw(x!), 'depthwise_kernel');
  return activate(ctx, { name: y, layout: 'nchw' }, ctx.layer.config.activation);
};

/** SeparableConv2D: depthwise conv (strides, padding, dilation) then a 1×1 pointwise conv with the bias. */
export const separableConv2d: LayerConverter = (ctx, [x]) => {
  requireChannelsLast(ctx);
  const d = depthwise(ctx, ctx.nchw(x!), 'depthwise_kernel');
  const P = ctx.weight('pointwise_kernel');
  checkKernel(ctx, 'pointwise_kernel', P, [1, 1, undefined, ctx.layer.config.filters]);
  const W = ctx.init('pointwise_kernel', () => permute(P, [3, 2, 0, 1]));
  const y = ctx.e.op('Conv', bias(ctx, [d, W]), { kernel_shape: [1, 1], strides: [1, 1], pads: [0, 0, 0, 0] });
  return activate(ctx, { name: y, layout: 'nchw' }, ctx.layer.config.activation);
};

function pool(op: 'MaxPool' | 'AveragePool'): LayerConverter {
  return (ctx, [x]) => {
    requireChannelsLast(ctx);
    const c = ctx.layer.config;
    const kernel = pair(c.pool_size ?? 2, 'pool_size', ctx.where);
    const strides = pair(c.strides ?? kernel, 'strides', ctx.where);
    const X = ctx.nchw(x!);
    const pads = windowPads(ctx, ctx.e.shape(X), kernel, strides, [1, 1]);
    // TF's SAME average pooling divides by the number of real (unpadded) pixels: count_include_pad = 0
    const attrs = windowAttrs(pads, op === 'AveragePool' ? { kernel_shape: kernel, strides, count_include_pad: 0 } : { kernel_shape: kernel, strides });
    return { name: ctx.e.op(op, [X], attrs), layout: 'nchw' };
  };
}

/** MaxPooling2D. */
export const maxPool2d = pool('MaxPool');
/** AveragePooling2D (padding excluded from the average, as in TF). */
export const avgPool2d = pool('AveragePool');

function globalPool(op: 'GlobalAveragePool' | 'GlobalMaxPool'): LayerConverter {
  return (ctx, [x]) => {
    requireChannelsLast(ctx);
    const y = ctx.e.op(op, [ctx.nchw(x!)]);
    if (ctx.layer.config.keepdims) return { name: y, layout: 'nchw' };
    return { name: ctx.e.op('Flatten', [y], { axis: 1 }), layout: 'keras' };
  };
}

/** GlobalAveragePooling2D (keepdims honoured). */
export const globalAvgPool2d = globalPool('GlobalAveragePool');
/** GlobalMaxPooling2D (keepdims honoured). */
export const globalMaxPool2d = globalPool('GlobalMaxPool');

/** ZeroPadding2D: int, [h, w] or [[top, bottom], [left, right]]. */
export const zeroPadding2d: LayerConverter = (ctx, [x]) => {
  requireChannelsLast(ctx);
  const p = ctx.layer.config.padding ?? 1;
  let hw: [[number, number], [number, number]];
  if (Array.isArray(p) && Array.isArray(p[0])) hw = [pair(p[0], 'padding', ctx.where), pair(p[1], 'padding', ctx.where)];
  else {
    const [h, w] = pair(p, 'padding', ctx.where);
    hw = [
      [h, h],
      [w, w],
    ];
  }
  const pads = ctx.e.ints([0, 0, hw[0][0], hw[1][0], 0, 0, hw[0][1], hw[1][1]]);
  return { name: ctx.e.op('Pad', [ctx.nchw(x!), pads], { mode: 'constant' }), layout: 'nchw' };
};

/** Cropping2D: int, [h, w] or [[top, bottom], [left, right]] (needs a static spatial size). */
export const cropping2d: LayerConverter = (ctx, [x]) => {
  requireChannelsLast(ctx);
  const p = ctx.layer.config.cropping ?? 0;
  const hw =
    Array.isArray(p) && Array.isArray(p[0])
      ? [pair(p[0], 'cropping', ctx.where), pair(p[1], 'cropping', ctx.where)]
      : pair(p, 'cropping', ctx.where).map((v) => [v, v]);
  const X = ctx.nchw(x!);
  const s = ctx.e.shape(X);
  const [H, W] = [s?.[2], s?.[3]];
  if (typeof H !== 'number' || typeof W !== 'number')
    throw new Error(`${ctx.where}: Cropping2D needs a static height and width. Give the InputLayer a full shape.`);
  const starts = ctx.e.ints([hw[0]![0]!, hw[1]![0]!]);
  const ends = ctx.e.ints([H - hw[0]![1]!, W - hw[1]![1]!]);
  return { name: ctx.e.op('Slice', [X, starts, ends, ctx.e.ints([2, 3])]), layout: 'nchw' } satisfies KValue;
};
