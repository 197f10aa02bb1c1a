/** Layers with parameters: Linear, Conv2d, BatchNorm1d/2d — PyTorch names, shapes and default inits. */
import type { Emitter } from '../ir/emit.js';
import type { Dim } from '../ir/graph.js';
import type { Rng } from '../tensor.js';
import { defaultBias, full, kaimingNormal, kaimingUniform } from './init.js';
import { addParam, join, Module, scoped, where } from './module.js';

type Pair = number | [number, number];
const pair = (v: Pair): [number, number] => (Array.isArray(v) ? v : [v, v]);
const shapeStr = (s: Dim[] | undefined) => (s ? `[${s.map((d) => d ?? '?').join(', ')}]` : 'unknown');

/** Options of {@link linear}. */
export interface LinearOptions {
  /** Add a bias (default true). */
  bias?: boolean;
}

/**
 * `nn.Linear(in_features, out_features)`: y = x·Wᵀ + b with weight [out, in], emitted as Gemm(transB=1)
 * for 2-D inputs (MatMul + Add for higher ranks). `inFeatures = null` takes the size from the input
 * (like `nn.LazyLinear`).
 */
export class Linear extends Module {
  readonly kind = 'Linear';
  constructor(
    public inFeatures: number | null,
    public readonly outFeatures: number,
    public readonly opts: LinearOptions = {},
  ) {
    super();
    if (!(outFeatures > 0) || (inFeatures !== null && !(inFeatures > 0)))
      throw new Error(`Linear(${inFeatures}, ${outFeatures}): feature counts must be positive integers.`);
  }
  protected override extraRepr(): string {
    return `in_features=${this.inFeatures ?? 'lazy'}, out_features=${this.outFeatures}, bias=${this.opts.bias !== false ? 'True' : 'False'}`;
  }
  emit(e: Emitter, x: string, prefix: string, rng: Rng): string {
    const who = where('Linear', prefix);
    const shape = e.shape(x);
    const last = shape?.[shape.length - 1];
    let inF = this.inFeatures;
    if (inF === null) {
      if (typeof last !== 'number')
        throw new Error(`${who}: in_features is lazy but the incoming size is unknown (input shape ${shapeStr(shape)}). Pass in_features explicitly.`);
      inF = last;
    } else if (typeof last === 'number' && last !== inF)
      throw new Error(
        `${who}: in_features is ${inF} but the incoming value "${x}" has ${last} features (shape ${shapeStr(shape)}). Use Linear(${last}, ${this.outFeatures}) (or null to infer it).`,
      );
    if (shape && shape.length < 2)
      throw new Error(`${who}: expects an input of rank ≥ 2 ([N, ${inF}]), got shape ${shapeStr(shape)}. Add a flatten() or unsqueeze first.`);
    return scoped(e, prefix, () => {
      const wDims = [this.outFeatures, inF];
      const w = addParam(e, join(prefix, 'weight'), kaimingUniform(rng, wDims), who);
      const b = this.opts.bias === false ? null : addParam(e, join(prefix, 'bias'), defaultBias(rng, wDims, this.outFeatures), who);
      if (!shape || shape.length === 2) return e.op('Gemm', b ? [x, w, b] : [x, w], { transB: 1 }, 'Gemm');
      const y = e.op('MatMul', [x, e.transpose(w, [1, 0])]);
      return b ? e.add(y, b) : y;
    });
  }
}

/** Options of {@link conv2d}. */
export interface Conv2dOptions {
  stride?: Pair;
  /** Symmetric zero padding per spatial axis (default 0). */
  padding?: Pair;
  dilation?: Pair;
  groups?: number;
  bias?: boolean;
  /** Weight init: PyTorch's Conv2d default (kaiming_uniform a=√5), or torchvision ResNet's kaiming_normal fan_out. */
  init?: 'default' | 'kaimingNormalFanOut';
}

/** `nn.Conv2d(in, out, kernel_size, stride, padding, dilation, groups, bias)` emitted as an ONNX Conv (NCHW). */
export class Conv2d extends Module {
  readonly kind = 'Conv2d';
  readonly kernel: [number, number];
  constructor(
    public readonly inChannels: number,
    public readonly outChannels: number,
    kernelSize: Pair,
    public readonly opts: Conv2dOptions = {},
  ) {
    super();
    this.kernel = pair(kernelSize);
    const groups = opts.groups ?? 1;
    if (inChannels % groups || outChannels % groups)
      throw new Error(`Conv2d(${inChannels}, ${outChannels}): in and out channels must both be divisible by groups=${groups}.`);
  }
  protected override extraRepr(): string {
    const o = this.opts;
    const parts = [`${this.inChannels}, ${this.outChannels}, kernel_size=(${this.kernel.join(', ')})`];
    if (o.stride !== undefined) parts.push(`stride=(${pair(o.stride).join(', ')})`);
    if (o.padding !== undefined) parts.push(`padding=(${pair(o.padding).join(', ')})`);
    if (o.dilation !== undefined) parts.push(`dilation=(${pair(o.dilation).join(', ')})`);
    if ((o.groups ?? 1) !== 1) parts.push(`groups=${o.groups}`);
    if (o.bias === false) parts.push('bias=False');
    return parts.join(', ');
  }
  emit(e: Emitter, x: string, prefix: string, rng: Rng): string {
    const who = where('Conv2d', prefix);
    const shape = e.shape(x);
    if (shape && shape.length !== 4)
      throw new Error(`${who}: expects a 4-D input [N, C, H, W], got "${x}" with shape ${shapeStr(shape)}. Reshape the input or use Linear for flat features.`);
    const c = shape?.[1];
    if (typeof c === 'number' && c !== this.inChannels)
      throw new Error(
        `${who}: in_channels is ${this.inChannels} but the incoming value "${x}" has ${c} channels (shape ${shapeStr(shape)}). Use Conv2d(${c}, ${this.outChannels}, ...).`,
      );
    const groups = this.opts.groups ?? 1;
    const [ph, pw] = pair(this.opts.padding ?? 0);
    const attrs = {
      kernel_shape: this.kernel,
      strides: pair(this.opts.stride ?? 1),
      pads: [ph, pw, ph, pw],
      dilations: pair(this.opts.dilation ?? 1),
      group: groups,
    };
    return scoped(e, prefix, () => {
      const wDims = [this.outChannels, this.inChannels / groups, ...this.kernel];
      const wInit = this.opts.init === 'kaimingNormalFanOut' ? kaimingNormal(rng, wDims, 'fan_out') : kaimingUniform(rng, wDims);
      const w = addParam(e, join(prefix, 'weight'), wInit, who);
      const inputs = [x, w];
      if (this.opts.bias !== false) inputs.push(addParam(e, join(prefix, 'bias'), defaultBias(rng, wDims, this.outChannels), who));
      return e.op('Conv', inputs, attrs, 'Conv');
    });
  }
}

/** Options of {@link batchNorm2d} / {@link batchNorm1d}. */
export interface BatchNormOptions {
  /** Added to the variance (default 1e-5). */
  eps?: number;
  /** PyTorch's momentum (default 0.1); written as ONNX momentum = 1 − momentum. */
  momentum?: number;
}

/**
 * `nn.BatchNorm2d(c)` / `nn.BatchNorm1d(c)` in inference form: one BatchNormalization node reading
 * weight, bias, running_mean, running_var initializers (init 1, 0, 0, 1).
 */
export class BatchNorm extends Module {
  readonly kind: string;
  constructor(
    public readonly numFeatures: number,
    public readonly dims: 1 | 2,
    public readonly opts: BatchNormOptions = {},
  ) {
    super();
    this.kind = `BatchNorm${dims}d`;
    if (!(numFeatures > 0)) throw new Error(`${this.kind}(${numFeatures}): num_features must be a positive integer.`);
  }
  protected override extraRepr(): string {
    return `${this.numFeatures}, eps=${this.opts.eps ?? 1e-5}, momentum=${this.opts.momentum ?? 0.1}`;
  }
  emit(e: Emitter, x: string, prefix: string, _rng: Rng): string {
    const who = where(this.kind, prefix);
    const shape = e.shape(x);
    const okRank = this.dims === 2 ? [4] : [2, 3];
    if (shape && !okRank.includes(shape.length))
      throw new Error(
        `${who}: expects a ${this.dims === 2 ? '4-D [N, C, H, W]' : '2-D [N, C] or 3-D [N, C, L]'} input, got "${x}" with shape ${shapeStr(shape)}. Use BatchNorm${this.dims === 2 ? '1d' : '2d'} instead.`,
      );
    const c = shape?.[1];
    if (typeof c === 'number' && c !== this.numFeatures)
      throw new Error(`${who}: num_features is ${this.numFeatures} but the input has ${c} channels (shape ${shapeStr(shape)}). Use ${this.kind}(${c}).`);
    const n = this.numFeatures;
    return scoped(e, prefix, () => {
      const p = (name: string, v: number) => addParam(e, join(prefix, name), full([n], v), who);
      const inputs = [x, p('weight', 1), p('bias', 0), p('running_mean', 0), p('running_var', 1)];
      return e.op('BatchNormalization', inputs, { epsilon: this.opts.eps ?? 1e-5, momentum: 1 - (this.opts.momentum ?? 0.1) }, 'BatchNormalization');
    });
  }
}

/** `nn.Linear(inFeatures, outFeatures, bias=True)`; `inFeatures = null` infers it from the input. */
export const linear = (inFeatures: number | null, outFeatures: number, opts?: LinearOptions) => new Linear(inFeatures, outFeatures, opts);
/** `nn.Conv2d(inChannels, outChannels, kernelSize, ...)`. */
export const conv2d = (inChannels: number, outChannels: number, kernelSize: Pair, opts?: Conv2dOptions) =>
  new Conv2d(inChannels, outChannels, kernelSize, opts);
/** `nn.BatchNorm2d(c)` over [N, C, H, W]. */
export const batchNorm2d = (c: number, opts?: BatchNormOptions) => new BatchNorm(c, 2, opts);
/** `nn.BatchNorm1d(c)` over [N, C] or [N, C, L]. */
export const batchNorm1d = (c: number, opts?: BatchNormOptions) => new BatchNorm(c, 1, opts);
