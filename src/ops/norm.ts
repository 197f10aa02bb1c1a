/**
 * Normalization ops: BatchNormalization (eval-mode gradient; training mode is rewritten into standard ops by
 * `toTrainingGraph` in src/step/mode.ts), LayerNormalization (opset 17) and InstanceNormalization.
 */

import type { Emitter } from '../ir/emit.js';
import { attrFloat, attrInt, type Dim, type Node, type ValueInfo } from '../ir/graph.js';
import { type InferContext, OpFamily, type TypeShape } from '../ir/op-registry.js';
import { desc, normAxis, requireShape } from '../ir/shape-utils.js';

/** The norm ops, installed into the op table by registerStandardOps() (src/ops/index.ts). */
export const normOps = new OpFamily('norm');
const defineOp = normOps.define;

/**
 * True when a BatchNormalization node computes batch statistics: `training_mode=1` (BN-14/15), or, for
 * BN-9 (opsets < 14), when any of the optional running-stat outputs is requested.
 */
export function isTrainingBatchNorm(n: Node, opset: number): boolean {
  if (attrInt(n, 'training_mode', 0) === 1) return true;
  return opset < 14 && n.outputs.slice(1).some((o) => !!o);
}

/** Axes [from, from+1, ..., rank-1]. */
function range(from: number, to: number): number[] {
  const out: number[] = [];
  for (let i = from; i < to; i++) out.push(i);
  return out;
}

/** A per-channel vector [C] reshaped to [C, 1, ..., 1] so it broadcasts against an (N, C, ...) tensor of rank `rank`. */
export function channelBroadcast(e: Emitter, p: string, rank: number): string {
  return rank > 2 ? e.unsqueeze(p, range(1, rank - 1)) : p;
}

/** Reduction axes of a per-channel statistic over an (N, C, ...) tensor: every axis but 1. */
export function nonChannelAxes(rank: number): number[] {
  return [0, ...range(2, rank)];
}

function channelCount(ins: (ValueInfo | undefined)[]): Dim {
  return ins[0]?.shape?.[1] ?? ins[1]?.shape?.[0] ?? null;
}

function rankOf(e: Emitter, n: Node): number {
  const r = requireShape(e.info(n.inputs[0]!), n, 'its input X').length;
  if (r < 2) throw new Error(`${desc(n)}: input X has rank ${r}; normalization needs (N, C, ...) with rank ≥ 2. Check the model's input shape.`);
  return r;
}

defineOp('BatchNormalization', {
  infer: (n, ins, ctx: InferContext) => {
    const x = ins[0];
    const stat: TypeShape = { dtype: ins[3]?.dtype ?? x?.dtype ?? 'float32', shape: [channelCount(ins)] };
    const outs: TypeShape[] = [{ dtype: x?.dtype ?? 'float32', shape: x?.shape }];
    // BN-14/15: running_mean, running_var; BN-9 (opset < 14): mean, var, saved_mean, saved_var.
    const extra = ctx.opset >= 14 ? 2 : 4;
    for (let i = 1; i < Math.min(n.outputs.length, 1 + extra); i++) outs.push(stat);
    return outs;
  },
  nonDifferentiableOutputs: [1, 2, 3, 4],
  // Eval mode: y = (x - mean) / sqrt(var + eps) * scale + B with mean/var the stored statistics.
  grad: (e, n, [dy], needs) => {
    if (isTrainingBatchNorm(n, e.opset))
      throw new Error(
        `${desc(n)} is in training mode (it computes batch statistics); graft has no direct gradient rule for that form. ` +
          'Call toTrainingGraph(graph, opset, { trainBN }) from src/step/mode.ts before differentiating: it rewrites training-mode ' +
          'BatchNormalization into standard ops (or freezes it when trainBN returns false).',
      );
    const [x, scale, , mean, variance] = n.inputs as [string, string, string, string, string];
    const r = rankOf(e, n);
    const axes = nonChannelAxes(r);
    const eps = attrFloat(n, 'epsilon', 1e-5);
    const inv = e.op('Reciprocal', [e.op('Sqrt', [e.add(variance, e.scalar(eps))])]);
    const scaleInv = e.mul(scale, inv);
    const out: (string | null)[] = [null, null, null, null, null];
    if (needs[0]) out[0] = e.mul(dy!, channelBroadcast(e, scaleInv, r));
    const centered = needs[1] || needs[4] ? e.sub(x, channelBroadcast(e, mean, r)) : null;
    if (needs[1]) out[1] = e.reduceSum(e.mul(dy!, e.mul(centered!, channelBroadcast(e, inv, r))), axes, false);
    const sumDy = needs[2] || needs[3] ? e.reduceSum(dy!, axes, false) : null;
    if (needs[2]) out[2] = sumDy;
    if (needs[3]) out[3] = e.neg(e.mul(sumDy!, scaleInv));
    if (needs[4]) {
      // d/dvar of (x-mean)·(var+eps)^(-1/2)·scale = -½ (x-mean)·scale·inv³
      const inv3 = e.mul(inv, e.mul(inv, inv));
      out[4] = e.mul(e.reduceSum(e.mul(dy!, centered!), axes, false), e.mul(e.mul(scale, inv3), e.scalar(-0.5)));
    }
    return out;
  },
});

/**
 * Gradient of y = xhat·γ + β with xhat = (x − mean)/sqrt(var + eps), statistics taken over `axes` of x
 * (recomputed here): dx = rstd·(g − mean(g) − xhat·mean(g·xhat)) with g = dy·γ.
 * Returns dx and xhat (for the γ gradient).
 */
function normalizedBackward(e: Emitter, x: string, dy: string, gammaB: string | null, axes: number[], eps: number): { dx: string; xhat: string } {
  const mu = e.reduceMean(x, axes, true);
  const d = e.sub(x, mu);
  const variance = e.reduceMean(e.mul(d, d), axes, true);
  const rstd = e.op('Reciprocal', [e.op('Sqrt', [e.add(variance, e.scalar(eps))])]);
  const xhat = e.mul(d, rstd);
  const g = gammaB ? e.mul(dy, gammaB) : dy;
  const inner = e.sub(e.sub(g, e.reduceMean(g, axes, true)), e.mul(xhat, e.reduceMean(e.mul(g, xhat), axes, true)));
  return { dx: e.mul(rstd, inner), xhat };
}

defineOp('LayerNormalization', {
  infer: (n, ins) => {
    const x = ins[0];
    const outs: TypeShape[] = [{ dtype: x?.dtype ?? 'float32', shape: x?.shape }];
    const s = x?.shape;
    let statShape: Dim[] | undefined;
    if (s) {
      const axis = normAxis(attrInt(n, 'axis', -1), s.length);
      statShape = s.map((d, i) => (i < axis ? d : 1));
    }
    for (let i = 1; i < Math.min(n.outputs.length, 3); i++) outs.push({ dtype: 'float32', shape: statShape });
    return outs;
  },
  // Mean and InvStdDev outputs are treated as statistics: no gradient flows back through them.
  nonDifferentiableOutputs: [1, 2],
  grad: (e, n, [dy], needs) => {
    const [x, scale, bias] = n.inputs as [string, string, string | undefined];
    const r = requireShape(e.info(x), n, 'its input X').length;
    const axis = normAxis(attrInt(n, 'axis', -1), r);
    const axes = range(axis, r);
    const eps = attrFloat(n, 'epsilon', 1e-5);
    const { dx, xhat } = normalizedBackward(e, x, dy!, scale, axes, eps);
    return [needs[0] ? dx : null, needs[1] ? e.sumToShape(e.mul(dy!, xhat), scale, n) : null, needs[2] && bias ? e.sumToShape(dy!, bias, n) : null];
  },
});

defineOp('InstanceNormalization', {
  infer: (_n, ins) => [{ dtype: ins[0]?.dtype ?? 'float32', shape: ins[0]?.shape }],
  // y = (x − mean_nc)/sqrt(var_nc + eps)·scale_c + B_c, statistics over the spatial axes of each (n, c).
  grad: (e, n, [dy], needs) => {
    const [x, scale] = n.inputs as [string, string, string];
    const r = rankOf(e, n);
    if (r < 3) throw new Error(`${desc(n)}: InstanceNormalization needs (N, C, D1, ...) with rank ≥ 3, got rank ${r}. Check the model's input shape.`);
    const eps = attrFloat(n, 'epsilon', 1e-5);
    const { dx, xhat } = normalizedBackward(e, x, dy!, channelBroadcast(e, scale, r), range(2, r), eps);
    const axes = nonChannelAxes(r);
    return [needs[0] ? dx : null, needs[1] ? e.reduceSum(e.mul(dy!, xhat), axes, false) : null, needs[2] ? e.reduceSum(dy!, axes, false) : null];
  },
});
