/**
 * BatchNormTrain (domain "graft"): training-mode batch normalization as one node while graft
 * differentiates, so its backward is the lean closed form (two reductions and three passes for dx) instead
 * of what the generic rules make of the decomposed ops (≈20 passes). Before a model is serialized,
 * lowerGraftOps (src/ir/op-registry.ts) expands it into standard ONNX ops, so no custom op ever reaches a runtime.
 *
 * Inputs: X (N, C, ...), scale [C], bias [C]. Attribute: epsilon.
 * Outputs: Y, batch mean and biased variance (shape [1, C, 1, ...]), the centred input X − mean, invstd.
 * The centred input (which the variance needs anyway) is what the backward keeps, not xhat: one pass fewer.
 */
import { type Emitter, inferNode } from '../ir/emit.js';
import { attrFloat, type Graph, type Node } from '../ir/graph.js';
import { GRAFT_DOMAIN, OpFamily } from '../ir/op-registry.js';
import { type RankedScalars, scalarsOfRank } from '../ir/scalars.js';
import { desc } from '../ir/shape-utils.js';
import { Tensor } from '../tensor.js';
import { channelBroadcast, nonChannelAxes } from './norm.js';

/** The bn-train ops, installed into the op table by registerStandardOps() (src/ops/index.ts). */
export const bnTrainOps = new OpFamily('bn-train');
const defineOp = bnTrainOps.define;

defineOp('BatchNormTrain', {
  infer: (_n, ins) => {
    const s = ins[0]?.shape;
    const stat = s ? s.map((d, i) => (i === 1 ? d : 1)) : undefined;
    return [
      { dtype: 'float32', shape: s },
      { dtype: 'float32', shape: stat },
      { dtype: 'float32', shape: stat },
      { dtype: 'float32', shape: s },
      { dtype: 'float32', shape: stat },
    ];
  },
  nonDifferentiableOutputs: [1, 2, 3, 4],
  grad: (e, n, [dy], needs) => {
    const [, scale] = n.inputs as [string, string, string];
    const [, , , centred, invstd] = n.outputs as [string, string, string, string, string];
    const r = rankOf(e, n);
    const axes = nonChannelAxes(r);
    const dbetaK = e.reduceSum(dy!, axes, true); // Σdy, [1,C,1,1]
    const sK = e.reduceSum(e.mul(dy!, centred), axes, true); // Σdy·(x − μ); Σdy·xhat = invstd·sK
    const out: (string | null)[] = [null, null, null];
    if (needs[0]) {
      // dx = γ·invstd·(dy − Σdy/M − xhat·Σ(dy·xhat)/M) = a·dy + b·(x − μ) + c per channel, with
      // a = γ·invstd, b = −a·invstd²·sK/M, c = −a·Σdy/M. b·(x − μ) + c is one inference-mode BatchNormalization
      // (mean 0, var 1, epsilon 0: a fused per-channel affine), so dx costs three passes instead of four.
      // the count and every per-channel statistic are [1, C, 1, …]: the count shaped alike (onnxruntime's slow
      // broadcast of a rank-0 scalar over small inner dims otherwise; src/ir/scalars.ts)
      const m = perChannelCount(e, n, r, scalarsOfRank(e));
      const C = channels(e, n);
      const a = e.mul(channelBroadcast(e, scale, r), invstd);
      const b = e.neg(e.div(e.mul(e.mul(a, e.mul(invstd, invstd)), sK), m));
      const c = e.neg(e.div(e.mul(a, dbetaK), m));
      out[0] = e.add(e.mul(dy!, a), perChannelAffine(e, centred, b, c, C));
      // the same dx as a ⊙ (dy + b′·(x − μ) + c′), b′ = −invstd²·sK/M, c′ = −Σdy/M: two passes. A Conv that made x
      // folds a into its weight and weight gradient (channelScaledGrad); then the three-pass form above is dead
      const b1 = e.neg(e.div(e.mul(e.mul(invstd, invstd), sK), m));
      const c1 = e.neg(e.div(dbetaK, m));
      scaledGrads(e).set(out[0], { unscaled: e.add(dy!, perChannelAffine(e, centred, b1, c1, C)), scale: a });
    }
    if (needs[1]) out[1] = e.squeeze(e.mul(sK, invstd), axes);
    if (needs[2]) out[2] = e.squeeze(dbetaK, axes);
    return out;
  },
  lower: (e, n) => lowerBatchNormTrain(e, n),
});

/** A gradient that is a per-channel scale times another value: dx = scale ⊙ unscaled, scale shaped [1, C, 1, …]. */
export interface ChannelScaledGrad {
  unscaled: string;
  scale: string;
}

const scaled = new WeakMap<Graph, Map<string, ChannelScaledGrad>>();

function scaledGrads(e: Emitter): Map<string, ChannelScaledGrad> {
  let m = scaled.get(e.graph);
  if (!m) scaled.set(e.graph, (m = new Map()));
  return m;
}

/**
 * When `dy` is BatchNormTrain's input gradient (the whole gradient of the BN's input), it as `scale ⊙ unscaled`:
 * the rule of the op that made the BN's input (a Conv) can fold the per-channel scale into its weight and weight
 * gradient instead of reading `dy`, which saves BN's full-size `a·dy` pass (docs/benchmarks.md, "Session 9").
 */
export function channelScaledGrad(e: Emitter, dy: string): ChannelScaledGrad | undefined {
  return scaled.get(e.graph)?.get(dy);
}

/** scale·x + bias per channel (scale, bias shaped [1, C, 1, ...]) in one pass: BatchNormalization with mean 0, var 1, epsilon 0. */
function perChannelAffine(e: Emitter, x: string, scale: string, bias: string, C: number): string {
  const fill = (v: number) => e.constTensor(Tensor.f32([C], new Float32Array(C).fill(v)), 'bn_const');
  return e.op('BatchNormalization', [x, perChannel(e, scale), perChannel(e, bias), fill(0), fill(1)], { epsilon: 0 });
}

/** A per-channel statistic shaped [1, C, 1, ...] as the [C] vector BatchNormalization takes. */
function perChannel(e: Emitter, t: string): string {
  return e.op('Reshape', [t, e.ints([-1])]);
}

/** The channel count C, from the scale's static shape. */
function channels(e: Emitter, n: Node): number {
  const c = e.shape(n.inputs[1]!)?.[0];
  if (typeof c !== 'number') throw new Error(`${desc(n)}: the scale's length (the channel count) must be static.`);
  return c;
}

function rankOf(e: Emitter, n: Node): number {
  const r = e.rank(n.inputs[0]!);
  if (r === undefined || r < 2) throw new Error(`${desc(n)}: input rank must be known and ≥ 2 (N, C, ...).`);
  return r;
}

/** Number of values per channel (N·H·W) as a scalar of rank `r` (`k`), static when possible. */
function perChannelCount(e: Emitter, n: Node, r: number, k: RankedScalars): string {
  const s = e.shape(n.inputs[0]!)!;
  const rest = nonChannelAxes(r).map((a) => s[a]);
  if (rest.every((d) => typeof d === 'number'))
    return k.constant(
      (rest as number[]).reduce((a, b) => a * b, 1),
      r,
    );
  const size = (v: string) => e.op('Cast', [e.op('Size', [v])], { to: 1 });
  return k.value(e.div(size(n.inputs[0]!), size(n.outputs[1]!)), r);
}

/** Emits a BatchNormTrain node whose Y output is named `y`; returns its outputs [y, mean, var, xhat, invstd]. */
export function emitBatchNormTrain(e: Emitter, x: string, scale: string, bias: string, epsilon: number, y: string): string[] {
  const outs = [y, ...['mean', 'var', 'centred', 'invstd'].map((k) => e.graph.fresh(`${e.prefix}bn_${k}`))];
  const node = e.graph.addNode('BatchNormTrain', [x, scale, bias], outs, { epsilon }, e.graph.fresh(`${e.prefix}BatchNormTrain`));
  node.domain = GRAFT_DOMAIN;
  inferNode(e.graph, node, e);
  return outs;
}

/**
 * Expands one BatchNormTrain node into standard ops writing the same output names. Y comes from an inference-mode
 * BatchNormalization fed the batch statistics (one fused pass over X, instead of a Mul and an Add over xhat), and the
 * (biased) variance from the mean of the squared centred values — two-pass, so no E[x²] − E[x]² cancellation.
 * onnxruntime's own training-mode BatchNormalization (momentum 0) would give the statistics in one kernel, but measured
 * no faster over a whole step and moved ResNet-18's cross-check (docs/benchmarks.md, "Session 9 (the lead)").
 */
function lowerBatchNormTrain(e: Emitter, n: Node): void {
  const [x, scale, bias] = n.inputs as [string, string, string];
  const [y, mean, variance, centredOut, invstd] = n.outputs as [string, string, string, string, string];
  const r = rankOf(e, n);
  const axes = nonChannelAxes(r);
  const eps = attrFloat(n, 'epsilon', 1e-5);
  const k = scalarsOfRank(e); // ε and the count meet [1, C, 1, …] statistics: shaped alike (src/ir/scalars.ts)
  const named = (op: string, inputs: string[], out: string, attrs = {}) => e.graph.addNode(op, inputs, [out], attrs, e.graph.fresh(`${n.name}/${op}`));
  const mu = e.reduceMean(x, axes, true);
  named('Identity', [mu], mean);
  const sub = named('Sub', [x, mu], centredOut);
  inferNode(e.graph, sub, e);
  const centred = centredOut;
  // mean of the squared centred values: onnxruntime's ReduceSumSquare accumulates naively over non-contiguous
  // axes (relative error 1e-5…6e-5 at 50k–200k values per channel, vs 3e-7 for ReduceMean), which put graft's
  // training-mode BN outputs an order of magnitude further from float64 than PyTorch's float32 BN; per contiguous
  // row it is precise, hence meanOfSquares
  const v = r > 2 ? meanOfSquares(e, centred, r, n, k) : e.reduceMean(e.mul(centred, centred), axes, true);
  named('Identity', [v], variance);
  named('Reciprocal', [e.op('Sqrt', [e.add(v, k.constant(eps, r))])], invstd);
  named('BatchNormalization', [x, scale, bias, perChannel(e, mu), perChannel(e, v)], y, { epsilon: eps });
}

/**
 * Per-channel mean of v² for v [N, C, ...] (rank > 2): v·v, summed one spatial axis at a time (H, then W, …), then
 * over N, so no single sum runs longer than one axis. One ReduceSum over each contiguous (n, c) row of H·W pixels
 * (session 6) was fast but put every adaptation method's one-step cross-check at 5e-3 from float64 where this is
 * at 2e-6 (`npm run bench:adapt-torch`: 8 FAIL → 0); ReduceSumSquare per row (before that) was as precise but
 * onnxruntime's scalar kernel: 47–59 ms against ~4 ms on MobileNetV2's [8, 96, 112, 112], 8 % of its step. This
 * form costs ~1.5 % of a MobileNetV2 b8 step over the single row sum (CPU, alternating, quiet).
 */
function meanOfSquares(e: Emitter, v: string, r: number, n: Node, k: RankedScalars): string {
  let s = e.mul(v, v);
  for (let a = 2; a < r; a++) s = e.reduceSum(s, [a], true);
  const stat = e.reduceSum(s, [0], true);
  return e.div(stat, perChannelCount(e, n, r, k));
}
