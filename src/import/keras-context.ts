/**
 * Shared machinery of the Keras layer converters: values that remember their layout, the per-layer context
 * (emitter, weights, initializers), layout conversions and activations.
 *
 * Layout: Keras image tensors are NHWC; the ONNX model takes NCHW and keeps every rank-4 value that a
 * convolution or pooling touches in NCHW (layout 'nchw'), so the NHWC→NCHW change happens once, at the input.
 * A rank-4 value with layout 'nchw' is seen by Keras as [N, H, W, C]; everything else ('keras') is held exactly
 * as Keras holds it. Axis-dependent layers map Keras axes through {@link kerasAxis}.
 */
import type { Emitter } from '../ir/emit.js';
import type { Dim, Graph } from '../ir/graph.js';
import { Tensor } from '../tensor.js';
import type { KerasLayer } from './keras-topology.js';

/** A converted Keras tensor: the ONNX value and its layout. */
export interface KValue {
  name: string;
  layout: 'nchw' | 'keras';
}

/** What a layer converter gets. */
export interface LayerCtx {
  e: Emitter;
  layer: KerasLayer;
  /** "<file>: layer "<name>" (<Class>)", the prefix of every error about this layer. */
  where: string;
  /** A weight of this layer in Keras layout (e.g. "kernel"); throws naming the layer when missing. */
  weight(key: string): Tensor;
  /** A weight if the manifest has it. */
  maybeWeight(key: string): Tensor | undefined;
  /** Adds an initializer `<layer>.<key>` once (shared layers reuse it) and returns its name. */
  init(key: string, make: () => Tensor): string;
  /** The value as NCHW (a rank-4 Keras-layout value is transposed once and cached). */
  nchw(v: KValue): string;
  /** The value in Keras layout (NHWC for images). */
  keras(v: KValue): string;
}

/** A layer converter: inputs in, outputs out. */
export type LayerConverter = (ctx: LayerCtx, inputs: KValue[]) => KValue | KValue[];

/** Keras axis (may be negative) of a value → the ONNX axis, given the value's layout. */
export function kerasAxis(ctx: LayerCtx, v: KValue, axis: number): number {
  const r = ctx.e.rank(v.name);
  if (r === undefined) {
    if (axis < 0 || v.layout === 'nchw')
      throw new Error(`${ctx.where}: the rank of its input is unknown, so axis ${axis} cannot be placed. Give the InputLayer a full shape.`);
    return axis;
  }
  const a = axis < 0 ? axis + r : axis;
  if (a < 0 || a >= r) throw new Error(`${ctx.where}: axis ${axis} is out of range for a rank-${r} input. Fix the layer's axis.`);
  return v.layout === 'nchw' ? [0, 2, 3, 1][a]! : a;
}

/** The Keras-visible shape of a value (NHWC for 'nchw' values). */
export function kerasShape(ctx: LayerCtx, v: KValue): Dim[] | undefined {
  const s = ctx.e.shape(v.name);
  if (!s || v.layout === 'keras') return s;
  return [s[0]!, s[2]!, s[3]!, s[1]!];
}

/** The layout merge layers (Add, Concatenate...) compute in: NCHW when any input is, and all are rank 4. */
export function commonLayout(ctx: LayerCtx, ins: KValue[]): KValue[] {
  const nchw = ins.some((v) => v.layout === 'nchw') && ins.every((v) => ctx.e.rank(v.name) === 4);
  return ins.map((v) => (nchw ? { name: ctx.nchw(v), layout: 'nchw' } : { name: ctx.keras(v), layout: 'keras' }));
}

/** A config value as a pair (Keras allows an int for both spatial axes). */
export function pair(v: unknown, what: string, where: string): [number, number] {
  if (typeof v === 'number') return [v, v];
  if (Array.isArray(v) && v.length === 2 && v.every((x) => typeof x === 'number')) return [v[0], v[1]];
  throw new Error(`${where}: ${what} ${JSON.stringify(v)} is not an int or a pair of ints. Fix the layer config.`);
}

/** Rejects channels_first configs (TensorFlow.js models are channels_last). */
export function requireChannelsLast(ctx: LayerCtx): void {
  const f = ctx.layer.config.data_format;
  if (f && f !== 'channels_last')
    throw new Error(`${ctx.where}: data_format "${f}" is not supported (graft imports channels_last models). Re-export the model with channels_last.`);
}

/** Permutes a host tensor's axes (like numpy.transpose). */
export function permute(t: Tensor, perm: number[]): Tensor {
  const dims = t.dims;
  const outDims = perm.map((p) => dims[p]!);
  const src = t.data as Float32Array;
  const out = new Float32Array(src.length);
  const r = dims.length;
  const inStrides = new Array<number>(r);
  let s = 1;
  for (let i = r - 1; i >= 0; i--) {
    inStrides[i] = s;
    s *= dims[i]!;
  }
  const stride = perm.map((p) => inStrides[p]!);
  const idx = new Array<number>(r).fill(0);
  for (let o = 0; o < out.length; o++) {
    let off = 0;
    for (let i = 0; i < r; i++) off += idx[i]! * stride[i]!;
    out[o] = src[off]!;
    for (let i = r - 1; i >= 0; i--) {
      if (++idx[i]! < outDims[i]!) break;
      idx[i] = 0;
    }
  }
  return new Tensor('float32', outDims, out);
}

/** The activation name of a config value (a string, or Keras 3's serialized function object). */
export function activationName(v: unknown): string {
  if (v === null || v === undefined) return 'linear';
  if (typeof v === 'string') return v;
  const o = v as { config?: unknown; class_name?: string };
  if (typeof o.config === 'string') return o.config;
  if (o.config && typeof (o.config as { name?: unknown }).name === 'string') return (o.config as { name: string }).name;
  return String(o.class_name ?? JSON.stringify(v));
}

/** Activations graft maps to ONNX, by Keras/tfjs name. */
export const ACTIVATIONS = [
  'linear',
  'relu',
  'relu6',
  'sigmoid',
  'tanh',
  'softmax',
  'swish',
  'silu',
  'hard_swish',
  'hard-swish',
  'hard_silu',
  'hard_sigmoid',
  'hardSigmoid',
  'elu',
  'selu',
  'softplus',
  'softsign',
  'exponential',
  'gelu',
  'gelu_new',
  'mish',
  'log_softmax',
  'logSoftmax',
] as const;

/** Applies a Keras activation (by name) to a value; softmax acts on the Keras last axis. */
export function activate(ctx: LayerCtx, v: KValue, act: unknown): KValue {
  const name = activationName(act).toLowerCase();
  const e = ctx.e;
  const x = v.name;
  const same = (y: string): KValue => ({ name: y, layout: v.layout });
  switch (name) {
    case 'linear':
      return v;
    case 'relu':
      return same(e.op('Relu', [x]));
    case 'relu6':
      return same(e.op('Clip', [x, e.scalar(0), e.scalar(6)]));
    case 'sigmoid':
      return same(e.op('Sigmoid', [x]));
    case 'tanh':
      return same(e.op('Tanh', [x]));
    case 'softmax':
      return same(e.op('Softmax', [x], { axis: kerasAxis(ctx, v, -1) }));
    case 'swish':
    case 'silu':
      return same(e.mul(x, e.op('Sigmoid', [x])));
    case 'hard_swish':
    case 'hard-swish':
    case 'hard_silu':
      return same(e.op('HardSwish', [x]));
    case 'hard_sigmoid': // tfjs: clip(0.2·x + 0.5, 0, 1)
    case 'hardsigmoid':
      return same(e.op('HardSigmoid', [x], { alpha: 0.2, beta: 0.5 }));
    case 'elu':
      return same(e.op('Elu', [x], { alpha: 1 }));
    case 'selu':
      return same(e.op('Selu', [x]));
    case 'softplus':
      return same(e.op('Softplus', [x]));
    case 'softsign':
      return same(e.op('Softsign', [x]));
    case 'exponential':
      return same(e.op('Exp', [x]));
    case 'log_softmax':
    case 'logsoftmax':
      return same(e.op('LogSoftmax', [x], { axis: kerasAxis(ctx, v, -1) }));
    case 'mish':
      return same(e.mul(x, e.op('Tanh', [e.op('Softplus', [x])])));
    case 'gelu': // exact: x · Φ(x) = 0.5 · x · (1 + erf(x / √2))
      return same(e.mul(e.mul(x, e.scalar(0.5)), e.add(e.scalar(1), e.op('Erf', [e.mul(x, e.scalar(Math.SQRT1_2))]))));
    case 'gelu_new': {
      // tanh approximation: 0.5 · x · (1 + tanh(√(2/π) · (x + 0.044715 · x³)))
      const cube = e.mul(e.mul(x, x), x);
      const inner = e.mul(e.add(x, e.mul(cube, e.scalar(0.044715))), e.scalar(Math.sqrt(2 / Math.PI)));
      return same(e.mul(e.mul(x, e.scalar(0.5)), e.add(e.scalar(1), e.op('Tanh', [inner]))));
    }
    default:
      throw new Error(
        `${ctx.where}: activation "${name}" is not supported. Supported: ${ACTIVATIONS.join(', ')}. Replace it in the Keras model (or open an issue naming the activation).`,
      );
  }
}

/**
 * Renames value `from` to `to` in the nodes emitted since `start` (the only ones that can mention a value just
 * produced) and in the inferred types. Used to give each converted layer/op output its source name.
 */
export function renameRecent(g: Graph, start: number, from: string, to: string): void {
  for (const n of g.nodes.slice(start)) {
    n.inputs = n.inputs.map((i) => (i === from ? to : i));
    n.outputs = n.outputs.map((o) => (o === from ? to : o));
  }
  const info = g.valueInfo.get(from);
  if (info) {
    g.valueInfo.delete(from);
    g.valueInfo.set(to, { ...info, name: to });
  }
}
