/**
 * Gradient checkpointing inside one training-step graph: the forward activations of chosen segments (the first,
 * largest stages of a CNN) are not kept for the backward; the backward reads a recomputed copy of the segment, run
 * from the segment's input once the gradient has reached the segment's end.
 *
 * Why a gate: onnxruntime orders nodes by a depth-first walk back from the graph's leaves, so a clone of forward
 * nodes that reads only forward values could run right after the original forward and keep everything alive. The
 * clone's entry is read through `Reshape(entry, [N of dCut, entry's other dims])`, an alias whose shape input
 * depends on the cut's gradient, so no recomputed node can run before that gradient exists. (With a static batch
 * dimension onnxruntime folds the Shape and the gate is lost; graft's steps have a symbolic batch.)
 *
 * Exactness: the clones are the same ops with the same attributes on the same inputs, so onnxruntime runs the same
 * kernels on the same bytes and the recomputed values — and the gradients — are bit-identical (test/step/recompute.test.ts).
 * Training BatchNormalization recomputes its batch statistics from the same batch; seeded Dropout would draw the same
 * mask (the clone reads the same seed input and stream constant; no test covers it: MobileNetV2's recomputed stages
 * have no Dropout). The clones' running-statistic outputs are unused and pruned. The step's node order, which makes
 * the freed memory count, is compile.ts's `leavesForOrt`.
 */
import { Emitter } from '../ir/emit.js';
import type { Graph, Node } from '../ir/graph.js';
import { bytesPerElement } from '../tensor.js';

/** How a compiled step recomputes activations instead of keeping them (StepSpec.recompute). */
export type RecomputeSpec =
  /** Choose segments automatically by activation size ({@link chooseCuts}); nothing for small activations. */
  | 'auto'
  /** Keep every activation (no recomputation). */
  | false
  /** Explicit segment ends: forward values, each a single-tensor cut of the forward, in forward order. */
  | { cuts: string[] }
  /** Automatic, with its thresholds. */
  | RecomputeAuto;

/** The automatic choice's thresholds ({@link chooseCuts}); each defaults to {@link RECOMPUTE_DEFAULTS}. */
export interface RecomputeAuto {
  fraction?: number;
  minBytesPerSample?: number;
  segments?: number;
  /** The batch size the step will run at, when the caller knows it: then nothing is recomputed below `minBytesPerStep`. */
  batchSize?: number;
  minBytesPerStep?: number;
}

/** Defaults of the automatic choice (measured on MobileNetV2, docs/benchmarks.md "Session 8"). */
export const RECOMPUTE_DEFAULTS = {
  /** Recompute the forward prefix holding about this share of the activations the backward reads. */
  fraction: 0.7,
  /** Do nothing when the backward reads fewer bytes of activations per sample than this (small models, small images). */
  minBytesPerSample: 32 << 20,
  /** Split the prefix into at most this many segments (each is alive at once only during its own backward). */
  segments: 2,
  /**
   * With a known batch size, do nothing when the kept activations of a whole batch stay below this: the recomputation
   * costs ~15 % CPU per step, worth paying only where the memory is large (MobileNetV2 at 224 px reads ~75 MB per
   * image: batch 8, ~0.6 GB, runs as before and already peaks below PyTorch; batch 32, ~2.4 GB, recomputes).
   */
  minBytesPerStep: 1 << 30,
};

/** What {@link recomputeSegments} did. */
export interface RecomputeResult {
  /** The segment ends chosen (forward values). */
  cuts: string[];
  /** Forward nodes cloned for the backward. */
  cloned: number;
  /** Bytes per sample of activations the backward no longer keeps from the forward (an estimate from static shapes). */
  bytesPerSample: number;
}

/**
 * The forward nodes of a step graph: every node that `roots` (the loss, metrics, updated running statistics) depend
 * on, in graph order. This includes nodes a gradient rule moved into the forward (ReLU6's mask and its alias).
 */
export function forwardNodes(g: Graph, roots: string[]): Node[] {
  const need = new Set(roots);
  const keep = new Set<Node>();
  for (let i = g.nodes.length - 1; i >= 0; i--) {
    const n = g.nodes[i]!;
    if (!n.outputs.some((o) => need.has(o))) continue;
    keep.add(n);
    for (const x of n.inputs) if (x) need.add(x);
  }
  return g.nodes.filter((n) => keep.has(n));
}

/** Bytes per sample of a value (its static shape less the batch dimension), or 0 when not static. */
function perSample(g: Graph, v: string): number {
  const info = g.info(v);
  if (!info?.shape || info.shape.length < 2) return 0;
  const rest = info.shape.slice(1);
  if (rest.some((d) => typeof d !== 'number')) return 0;
  return (rest as number[]).reduce((p, q) => p * q, 1) * bytesPerElement(info.dtype);
}

/**
 * Values that depend on `entry` through forward nodes, with the forward nodes that produce them.
 * Graph inputs other than `entry` (parameters, seeds) and constants are not activations.
 */
function activations(forward: Node[], entry: string): Set<string> {
  const act = new Set([entry]);
  for (const n of forward) if (n.inputs.some((i) => act.has(i))) for (const o of n.outputs) if (o) act.add(o);
  return act;
}

/**
 * The single-tensor cuts of the forward: values `v` such that at some point of the forward's topological order `v`
 * is the only per-sample activation (rank ≥ 2, the entry's batch dimension) still to be read by a later forward node. Each is a place where the
 * forward can be restarted from one tensor.
 */
export function forwardCuts(g: Graph, forward: Node[], entry: string): string[] {
  const act = activations(forward, entry);
  const lastUse = new Map<string, number>();
  forward.forEach((n, i) => {
    for (const x of n.inputs) if (act.has(x)) lastUse.set(x, i);
  });
  const batch = g.info(entry)?.shape?.[0];
  // a per-sample tensor: rank ≥ 2 with the entry's batch dimension (not a statistic, a shape or a scalar)
  const batched = (v: string) => {
    const s = g.info(v)?.shape;
    return !!s && s.length >= 2 && s[0] === batch;
  };
  const open = new Set<string>();
  const cuts: string[] = [];
  forward.forEach((n, i) => {
    for (const x of n.inputs) if (lastUse.get(x) === i) open.delete(x);
    for (const o of n.outputs) if (o && act.has(o) && (lastUse.get(o) ?? -1) > i && batched(o)) open.add(o);
    const big = [...open].filter((v) => v !== entry);
    if (big.length === 1 && cuts.at(-1) !== big[0]) cuts.push(big[0]!);
  });
  return cuts;
}

/**
 * Chooses segment ends automatically: the forward prefix (from the data input) whose activations read by the
 * backward add up to about `fraction` of all such bytes, split at single-tensor cuts into at most `segments` pieces
 * of similar size. None when the backward reads fewer than `minBytesPerSample` bytes per sample, or, with a
 * `batchSize`, fewer than `minBytesPerStep` per batch.
 */
export function chooseCuts(g: Graph, forward: Node[], entry: string, readByBackward: Set<string>, opts: RecomputeAuto = {}): string[] {
  const fraction = opts.fraction ?? RECOMPUTE_DEFAULTS.fraction;
  const minBytes = opts.minBytesPerSample ?? RECOMPUTE_DEFAULTS.minBytesPerSample;
  const segments = Math.max(1, opts.segments ?? RECOMPUTE_DEFAULTS.segments);
  const act = activations(forward, entry);
  // bytes read by the backward, accumulated along the forward order
  const at = new Map<string, number>();
  let sum = 0;
  for (const n of forward) {
    for (const o of n.outputs) if (o && act.has(o) && readByBackward.has(o)) sum += perSample(g, o);
    for (const o of n.outputs) if (o) at.set(o, sum);
  }
  if (sum < minBytes) return [];
  if (opts.batchSize !== undefined && sum * opts.batchSize < (opts.minBytesPerStep ?? RECOMPUTE_DEFAULTS.minBytesPerStep)) return [];
  const cuts = forwardCuts(g, forward, entry).filter((c) => (at.get(c) ?? 0) <= fraction * sum);
  if (!cuts.length) return [];
  const total = at.get(cuts.at(-1)!)!;
  const chosen: string[] = [];
  for (let k = 1; k <= segments; k++) {
    const want = (total * k) / segments;
    // among the cuts after the previous segment's end and at or below this share, the smallest tensor (it is kept
    // as the next segment's input), the latest of equals
    const after = chosen.length ? at.get(chosen.at(-1)!)! : -1;
    const window = cuts.filter((v) => at.get(v)! > after && at.get(v)! <= want + 1e-9);
    const c = window.reduce<string | undefined>((best, v) => (best === undefined || perSample(g, v) <= perSample(g, best) ? v : best), undefined);
    if (c) chosen.push(c);
  }
  return chosen;
}

/**
 * Rewrites `g` (forward nodes `forward`, then the backward and update nodes) in place so that the backward reads
 * recomputed copies of the forward values between consecutive cuts instead of the originals. `gradOf(v)` names the
 * gradient of forward value `v` in `g`; a segment whose end has no gradient is left as it is.
 * @throws when a cut is not a forward value downstream of `entry`, or cuts are not in forward order.
 */
export function recomputeSegments(
  g: Graph,
  opset: number,
  forward: Node[],
  entry: string,
  cuts: string[],
  gradOf: (v: string) => string | undefined,
): RecomputeResult {
  const fwdSet = new Set(forward);
  const producers = g.producers();
  const position = new Map(forward.map((n, i) => [n, i]));
  const e = new Emitter(g, opset, 'recompute/');
  let cloned = 0;
  let bytes = 0;
  let start = entry;
  let lastPos = -1;
  const done: string[] = [];
  for (const cut of cuts) {
    const p = producers.get(cut);
    if (!p || !fwdSet.has(p))
      throw new Error(`recompute: "${cut}" is not a value computed by the model's forward pass. Name a forward activation (see \`graft inspect\`).`);
    if (position.get(p)! <= lastPos)
      throw new Error(`recompute: the cut "${cut}" comes before the previous one in the forward pass; list cuts in forward order.`);
    lastPos = position.get(p)!;
    const dCut = gradOf(cut);
    const seg = segmentNodes(forward, start, cut);
    if (!seg.length) throw new Error(`recompute: nothing in the forward pass lies between "${start}" and "${cut}"; the cut must follow the previous one.`);
    if (dCut) {
      const r = cloneForBackward(g, e, seg, fwdSet, start, cut, dCut);
      cloned += r.cloned;
      bytes += r.bytes;
      done.push(cut);
    }
    start = cut;
  }
  return { cuts: done, cloned, bytesPerSample: bytes };
}

/** Forward nodes that depend on `start` and that `end` depends on (in forward order). */
function segmentNodes(forward: Node[], start: string, end: string): Node[] {
  const down = activations(forward, start);
  const up = new Set([end]);
  const seg: Node[] = [];
  for (let i = forward.length - 1; i >= 0; i--) {
    const n = forward[i]!;
    if (!n.outputs.some((o) => up.has(o))) continue;
    if (!n.inputs.some((x) => down.has(x))) continue;
    seg.push(n);
    for (const x of n.inputs) if (x && x !== start) up.add(x);
  }
  return seg.reverse();
}

function cloneForBackward(g: Graph, e: Emitter, seg: Node[], fwdSet: Set<Node>, start: string, end: string, dCut: string): { cloned: number; bytes: number } {
  // the segment's end stays the original: it is kept anyway, as the next segment's input
  const segOut = new Set(seg.flatMap((n) => n.outputs.filter((o) => o && o !== end)));
  // backward nodes reading the segment's values
  const readers = g.nodes.filter((n) => !fwdSet.has(n) && n.inputs.some((x) => segOut.has(x)));
  if (!readers.length) return { cloned: 0, bytes: 0 };
  // the gate: the segment's input, read through an alias whose shape waits for the cut's gradient
  const rank = g.info(start)?.shape?.length;
  if (!rank) throw new Error(`recompute: the rank of the segment input "${start}" is unknown; give the model input a static rank (e.g. [N,3,224,224]).`);
  const batch = e.op('Slice', [e.op('Shape', [dCut]), e.ints([0]), e.ints([1])]);
  const rest = e.op('Slice', [e.op('Shape', [start]), e.ints([1]), e.ints([rank])]);
  const gated = e.op('Reshape', [start, e.op('Concat', [batch, rest], { axis: 0 })], {}, 'gated');
  const map = new Map<string, string>([[start, gated]]);
  let cloned = 0;
  for (const n of seg) {
    const outputs = n.outputs.map((o) => (o ? g.fresh(`recompute/${o}`) : ''));
    n.outputs.forEach((o, k) => {
      if (!o) return;
      map.set(o, outputs[k]!);
      const info = g.info(o);
      if (info) g.valueInfo.set(outputs[k]!, { ...info, name: outputs[k]! });
    });
    const c = g.addNode(
      n.op,
      n.inputs.map((x) => map.get(x) ?? x),
      outputs,
      { ...n.attrs },
      g.fresh(`recompute/${n.name}`),
    );
    if (n.domain) c.domain = n.domain;
    cloned++;
  }
  let bytes = 0;
  const counted = new Set<string>();
  for (const r of readers)
    r.inputs = r.inputs.map((x) => {
      const y = segOut.has(x) ? map.get(x) : undefined;
      if (!y) return x;
      if (!counted.has(x)) {
        counted.add(x);
        bytes += perSample(g, x);
      }
      return y;
    });
  return { cloned, bytes };
}
