/**
 * TensorFlow op → ONNX converters for the graph importer (tfjs-graph.ts). Values carry the same layout flag as
 * the layers importer (rank-4 'nchw' values are NHWC to TensorFlow); constants stay on the host until an op
 * reads them, so kernels, biases and broadcast operands can be re-laid out for NCHW.
 */
import type { Emitter } from '../ir/emit.js';
import { Tensor } from '../tensor.js';
import { type KValue, permute } from './keras-context.js';
import { depthwiseWeight, samePads, windowAttrs } from './keras-conv.js';

/** One node of a TensorFlow GraphDef as tfjs stores it. */
export interface TfNode {
  name: string;
  op: string;
  input?: string[];
  // biome-ignore lint/suspicious/noExplicitAny: TF AttrValue JSON
  attr?: Record<string, any>;
}

/** A converted value, or a host constant. */
export type GValue = KValue | { const: Tensor; name: string };

/** What an op converter gets. */
export interface GraphCtx {
  e: Emitter;
  node: TfNode;
  where: string;
  ins: GValue[];
  /** Adds an initializer once under `name` (re-used by later readers of the same constant and layout). */
  init(name: string, make: () => Tensor): string;
  /** Marks a rank-2 pooled/flattened value as a feature-cut candidate. */
  feature(value: string): void;
}

type Conv = (c: GraphCtx) => GValue;

const str = (n: TfNode, k: string, def = '') => (n.attr?.[k]?.s !== undefined ? Buffer.from(n.attr[k].s, 'base64').toString() : def);
const ints = (n: TfNode, k: string, def: number[]) => (n.attr?.[k]?.list?.i as string[] | undefined)?.map(Number) ?? def;
const strs = (n: TfNode, k: string) => ((n.attr?.[k]?.list?.s ?? []) as string[]).map((s) => Buffer.from(s, 'base64').toString());
const bool = (n: TfNode, k: string) => n.attr?.[k]?.b === true;
const num = (n: TfNode, k: string, def: number) => (n.attr?.[k]?.f !== undefined ? Number(n.attr[k].f) : def);

function isConst(v: GValue | undefined): v is { const: Tensor; name: string } {
  return !!v && 'const' in v;
}
function value(c: GraphCtx, i: number): KValue {
  const v = c.ins[i];
  if (!v || isConst(v)) throw new Error(`input ${i} must be a computed tensor, not a constant. graft cannot import constant-only branches.`);
  return v;
}
function constant(c: GraphCtx, i: number, what: string): Tensor {
  const v = c.ins[i];
  if (!isConst(v))
    throw new Error(
      `its ${what} (input ${i}) must be a constant; graft imports graphs whose shapes and weights are fixed. Re-convert the model with constants folded.`,
    );
  return v.const;
}
const asF32 = (t: Tensor) => (t.dtype === 'float32' ? t : Tensor.f32(t.dims, t.toNumbers()));

function nchw(c: GraphCtx, v: KValue): string {
  if (v.layout === 'nchw') return v.name;
  if (c.e.rank(v.name) !== 4) throw new Error(`needs a rank-4 NHWC input but "${v.name}" has rank ${c.e.rank(v.name) ?? 'unknown'}.`);
  return c.e.transpose(v.name, [0, 3, 1, 2]);
}
function keras(c: GraphCtx, v: KValue): string {
  return v.layout === 'keras' ? v.name : c.e.transpose(v.name, [0, 2, 3, 1]);
}
/** A TF (NHWC) axis of `v` as the ONNX axis. */
function axisOf(c: GraphCtx, v: KValue, axis: number): number {
  const r = c.e.rank(v.name);
  if (r === undefined) throw new Error(`the rank of "${v.name}" is unknown, so axis ${axis} cannot be placed.`);
  const a = axis < 0 ? axis + r : axis;
  return v.layout === 'nchw' ? [0, 2, 3, 1][a]! : a;
}
/** A constant operand for a binary op with `other`: NHWC-broadcast constants are re-laid out for NCHW values. */
function constFor(c: GraphCtx, i: number, other: KValue): string {
  const t = asF32(constant(c, i, 'operand'));
  const name = (c.ins[i] as { name: string }).name;
  if (other.layout !== 'nchw' || t.dims.length === 0) return c.init(name, () => t);
  const dims = [...new Array(4 - t.dims.length).fill(1), ...t.dims];
  return c.init(`${name}/nchw`, () => permute(new Tensor('float32', dims, t.data), [0, 3, 1, 2]));
}

function activation(c: GraphCtx, x: string, op: string): string {
  switch (op) {
    case 'Relu':
      return c.e.op('Relu', [x]);
    case 'Relu6':
      return c.e.op('Clip', [x, c.e.scalar(0), c.e.scalar(6)]);
    case 'Elu':
      return c.e.op('Elu', [x], { alpha: 1 });
    case 'Selu':
      return c.e.op('Selu', [x]);
    case 'Sigmoid':
      return c.e.op('Sigmoid', [x]);
    case 'Tanh':
      return c.e.op('Tanh', [x]);
    case 'LeakyRelu':
      return c.e.op('LeakyRelu', [x], { alpha: num(c.node, 'leakyrelu_alpha', num(c.node, 'alpha', 0.2)) });
    default:
      throw new Error(`fused activation "${op}" is not supported (Relu, Relu6, Elu, Selu, Sigmoid, Tanh, LeakyRelu are). Re-convert without fusing it.`);
  }
}

/**
 * The fused ops of a _Fused* node, as tfjs runs them: an optional BiasAdd (its bias becomes the Conv/Gemm bias
 * input) then an optional activation; Prelu takes its alpha from the second argument.
 */
function fusedParts(c: GraphCtx): { bias?: string; activate: (y: string, channelShape: (n: number) => number[]) => string } {
  const ops = strs(c.node, 'fused_ops');
  let bias: string | undefined;
  let arg = 2;
  let rest = ops;
  if (ops[0] === 'BiasAdd') {
    const b = asF32(constant(c, arg, 'bias'));
    bias = c.init((c.ins[arg] as { name: string }).name, () => b);
    arg++;
    rest = ops.slice(1);
  } else if (ops[0] === 'FusedBatchNorm')
    throw new Error('fused batch norm inside a convolution is not supported (tfjs cannot run it either). Re-convert the model.');
  const activate = (y: string, channelShape: (n: number) => number[]) => {
    for (const op of rest) {
      if (op === 'Prelu') {
        const alpha = asF32(constant(c, arg, 'alpha'));
        y = c.e.op('PRelu', [y, c.init(`${(c.ins[arg] as { name: string }).name}/alpha`, () => new Tensor('float32', channelShape(alpha.size), alpha.data))]);
      } else y = activation(c, y, op);
    }
    return y;
  };
  return { bias, activate };
}

function checkNHWC(c: GraphCtx): void {
  const f = str(c.node, 'data_format', 'NHWC');
  if (f !== 'NHWC') throw new Error(`data_format ${f} is not supported (graft imports NHWC graphs). Re-convert the model with NHWC layout.`);
}

function windowGeometry(c: GraphCtx, x: string, kernel: [number, number]) {
  const s = ints(c.node, 'strides', [1, 1, 1, 1]);
  const d = ints(c.node, 'dilations', [1, 1, 1, 1]);
  const strides: [number, number] = [s[1]!, s[2]!];
  const dilations: [number, number] = [d[1]!, d[2]!];
  const padding = str(c.node, 'padding', 'VALID');
  let pads: number[] | undefined;
  if (padding === 'EXPLICIT') {
    const p = ints(c.node, 'explicit_paddings', []);
    pads = [p[2]!, p[4]!, p[3]!, p[5]!];
  } else pads = samePads(padding, c.where, c.e.shape(x), kernel, strides, dilations);
  return { strides, dilations, pads };
}

function conv(depthwise: boolean, fused: boolean): Conv {
  return (c) => {
    checkNHWC(c);
    const x = nchw(c, value(c, 0));
    const f = asF32(constant(c, 1, 'filter'));
    const [kh, kw, cin] = f.dims as [number, number, number, number];
    const wName = (c.ins[1] as { name: string }).name;
    const W = c.init(`${wName}/oihw`, () => (depthwise ? depthwiseWeight(f) : permute(f, [3, 2, 0, 1])));
    const g = windowGeometry(c, x, [kh, kw]);
    const C = c.e.shape(x)?.[1];
    const group = depthwise ? cin : typeof C === 'number' ? C / cin : 1;
    const f2 = fused ? fusedParts(c) : undefined;
    const y = c.e.op(
      'Conv',
      f2?.bias ? [x, W, f2.bias] : [x, W],
      windowAttrs(g.pads, { kernel_shape: [kh, kw], strides: g.strides, dilations: g.dilations, group }),
    );
    return { name: f2 ? f2.activate(y, (n) => [n, 1, 1]) : y, layout: 'nchw' };
  };
}

function pool(op: 'MaxPool' | 'AveragePool'): Conv {
  return (c) => {
    checkNHWC(c);
    const x = nchw(c, value(c, 0));
    const k = ints(c.node, 'ksize', [1, 1, 1, 1]);
    const kernel: [number, number] = [k[1]!, k[2]!];
    const g = windowGeometry(c, x, kernel);
    const extra: Record<string, number> = op === 'AveragePool' ? { count_include_pad: 0 } : {};
    return { name: c.e.op(op, [x], windowAttrs(g.pads, { kernel_shape: kernel, strides: g.strides, ...extra })), layout: 'nchw' };
  };
}

function binary(op: string): Conv {
  return (c) => {
    const [a, b] = c.ins;
    if (isConst(a) && isConst(b)) throw new Error('both operands are constants; re-convert the model with constants folded.');
    if (isConst(b) || isConst(a)) {
      const v = (isConst(a) ? b : a) as KValue;
      const k = isConst(a) ? 0 : 1;
      const cst = constFor(c, k, v);
      return { name: c.e.op(op, k === 0 ? [cst, v.name] : [v.name, cst]), layout: v.layout };
    }
    const both = [a, b] as KValue[];
    const toNchw = both.some((v) => v.layout === 'nchw') && both.every((v) => c.e.rank(v.name) === 4);
    const [x, y] = both.map((v) => (toNchw ? nchw(c, v) : keras(c, v)));
    return { name: c.e.op(op, [x!, y!]), layout: toNchw ? 'nchw' : 'keras' };
  };
}

function unary(op: string): Conv {
  return (c) => {
    const v = value(c, 0);
    return { name: activation(c, v.name, op), layout: v.layout };
  };
}

function elementwise(op: string): Conv {
  return (c) => {
    const v = value(c, 0);
    return { name: c.e.op(op, [v.name]), layout: v.layout };
  };
}

function reduce(op: 'ReduceMean' | 'ReduceMax' | 'ReduceSum'): Conv {
  return (c) => {
    const v = value(c, 0);
    const axes = constant(c, 1, 'axes')
      .toNumbers()
      .map((a) => axisOf(c, v, a));
    const keep = bool(c.node, 'keep_dims');
    const y = c.e.reduce(op, v.name, axes, keep);
    if (keep) return { name: y, layout: v.layout };
    if (v.layout === 'nchw' && !(axes.includes(2) && axes.includes(3)))
      throw new Error(`reducing axes [${axes}] of an NCHW value without keep_dims is not supported.`);
    if (c.e.rank(y) === 2) c.feature(y);
    return { name: y, layout: 'keras' };
  };
}

function matmul(fused: boolean): Conv {
  return (c) => {
    const a = keras(c, value(c, 0));
    const ta = bool(c.node, 'transpose_a');
    const tb = bool(c.node, 'transpose_b');
    const bIn = c.ins[1]!;
    const f2 = fused ? fusedParts(c) : undefined;
    let y: string;
    if (isConst(bIn) && c.e.rank(a) === 2) {
      const B = c.init(bIn.name, () => asF32(bIn.const));
      y = c.e.op('Gemm', f2?.bias ? [a, B, f2.bias] : [a, B], { transA: ta ? 1 : 0, transB: tb ? 1 : 0 });
    } else {
      const B = isConst(bIn) ? c.init(bIn.name, () => asF32(bIn.const)) : keras(c, bIn);
      const r = c.e.rank(a) ?? 2;
      const tr = (x: string) => c.e.transpose(x, [...Array(r - 2).keys(), r - 1, r - 2]);
      y = c.e.op('MatMul', [ta ? tr(a) : a, tb ? tr(B) : B]);
      if (f2?.bias) y = c.e.add(y, f2.bias);
    }
    return { name: f2 ? f2.activate(y, (n) => [n]) : y, layout: 'keras' };
  };
}

/** Converters by TensorFlow op name. */
export const GRAPH_OPS: Record<string, Conv> = {
  Identity: (c) => c.ins[0]!,
  StopGradient: (c) => c.ins[0]!,
  Conv2D: conv(false, false),
  _FusedConv2D: conv(false, true),
  DepthwiseConv2dNative: conv(true, false),
  FusedDepthwiseConv2dNative: conv(true, true),
  MaxPool: pool('MaxPool'),
  AvgPool: pool('AveragePool'),
  BiasAdd: binary('Add'),
  Add: binary('Add'),
  AddV2: binary('Add'),
  Sub: binary('Sub'),
  Mul: binary('Mul'),
  RealDiv: binary('Div'),
  Maximum: binary('Max'),
  Minimum: binary('Min'),
  Relu: unary('Relu'),
  Relu6: unary('Relu6'),
  Elu: unary('Elu'),
  Selu: unary('Selu'),
  Sigmoid: unary('Sigmoid'),
  Tanh: unary('Tanh'),
  LeakyRelu: unary('LeakyRelu'),
  Sqrt: elementwise('Sqrt'),
  Exp: elementwise('Exp'),
  Neg: elementwise('Neg'),
  Softplus: elementwise('Softplus'),
  Rsqrt: (c) => {
    const v = value(c, 0);
    return { name: c.e.op('Reciprocal', [c.e.op('Sqrt', [v.name])]), layout: v.layout };
  },
  Softmax: (c) => {
    const v = value(c, 0);
    return { name: c.e.op('Softmax', [v.name], { axis: axisOf(c, v, -1) }), layout: v.layout };
  },
  Mean: reduce('ReduceMean'),
  Max: reduce('ReduceMax'),
  Sum: reduce('ReduceSum'),
  MatMul: matmul(false),
  _FusedMatMul: matmul(true),
  FusedBatchNorm: batchNorm,
  FusedBatchNormV3: batchNorm,
  Reshape: (c) => {
    const shape = constant(c, 1, 'shape').toNumbers();
    if (shape.includes(0)) throw new Error(`target shape [${shape}] has a 0 dimension, which ONNX Reshape reads differently. Re-convert the model.`);
    const x = keras(c, value(c, 0));
    const y = c.e.op('Reshape', [x, c.e.ints(shape)]);
    const xs = c.e.shape(x);
    // [-1, rest...] keeps the batch when the rest holds exactly the input's per-sample size (shape inference sees only -1)
    const size = (d: (number | string | null)[]) => (d.every((v) => typeof v === 'number') ? (d as number[]).reduce((a, b) => a * b, 1) : Number.NaN);
    if (xs && shape[0] === -1 && size(shape.slice(1)) === size(xs.slice(1)))
      c.e.graph.valueInfo.set(y, { name: y, dtype: 'float32', shape: [xs[0]!, ...shape.slice(1)] });
    if (shape.length === 2 && xs?.length === 4) c.feature(y);
    return { name: y, layout: 'keras' };
  },
  Squeeze: (c) => {
    const v = value(c, 0);
    const dims = ints(c.node, 'squeeze_dims', ints(c.node, 'axis', []));
    if (dims.length === 0) throw new Error('Squeeze without squeeze_dims is not supported (it depends on runtime shapes). Re-convert with explicit axes.');
    const spatial = v.layout === 'nchw' && [...dims].sort().join() === '1,2';
    const y = spatial
      ? c.e.squeeze(v.name, [2, 3])
      : c.e.squeeze(
          keras(c, v),
          dims.map((d) => (d < 0 ? d + (c.e.rank(v.name) ?? 0) : d)),
        );
    if (spatial) c.feature(y);
    return { name: y, layout: 'keras' };
  },
  ExpandDims: (c) => {
    const v = value(c, 0);
    return { name: c.e.unsqueeze(keras(c, v), constant(c, 1, 'axis').toNumbers()), layout: 'keras' };
  },
  ConcatV2: (c) => {
    const vs = c.ins.slice(0, -1).map((_, i) => value(c, i));
    const toNchw = vs.some((v) => v.layout === 'nchw') && vs.every((v) => c.e.rank(v.name) === 4);
    const names = vs.map((v) => (toNchw ? nchw(c, v) : keras(c, v)));
    const axis = constant(c, c.ins.length - 1, 'axis').toNumbers()[0]!;
    const layout = toNchw ? 'nchw' : 'keras';
    return { name: c.e.op('Concat', names, { axis: axisOf(c, { name: names[0]!, layout }, axis) }), layout };
  },
  Pad: pad,
  PadV2: pad,
  MirrorPad: pad,
  Transpose: (c) => ({ name: c.e.transpose(keras(c, value(c, 0)), constant(c, 1, 'perm').toNumbers()), layout: 'keras' }),
};

function batchNorm(c: GraphCtx): GValue {
  checkNHWC(c);
  const v = value(c, 0);
  const x = c.e.rank(v.name) === 4 ? nchw(c, v) : keras(c, v);
  const params = [1, 2, 3, 4].map((i) => c.init((c.ins[i] as { name: string }).name, () => asF32(constant(c, i, 'batch-norm parameter'))));
  return { name: c.e.op('BatchNormalization', [x, ...params], { epsilon: num(c.node, 'epsilon', 1e-3) }), layout: c.e.rank(v.name) === 4 ? 'nchw' : 'keras' };
}

function pad(c: GraphCtx): GValue {
  const v = value(c, 0);
  const p = constant(c, 1, 'paddings').toNumbers();
  const r = p.length / 2;
  const mode = c.node.op === 'MirrorPad' ? str(c.node, 'mode', 'REFLECT') : 'CONSTANT';
  if (mode !== 'CONSTANT' && mode !== 'REFLECT')
    throw new Error(`MirrorPad mode ${mode} is not supported (ONNX has reflect, not symmetric). Re-convert with REFLECT or zero padding.`);
  const order = v.layout === 'nchw' ? [0, 3, 1, 2] : [...Array(r).keys()];
  const pads = [...order.map((a) => p[2 * a]!), ...order.map((a) => p[2 * a + 1]!)];
  const inputs = [v.name, c.e.ints(pads)];
  if (c.node.op === 'PadV2')
    inputs.push(c.init(`${(c.ins[2] as { name: string }).name}`, () => Tensor.scalar(constant(c, 2, 'constant value').toNumbers()[0]!)));
  return { name: c.e.op('Pad', inputs, { mode: mode.toLowerCase() === 'reflect' ? 'reflect' : 'constant' }), layout: v.layout };
}
