/**
 * Grafting a new head onto a model: everything after the feature cut is replaced by a module from nn/
 * (the graph surgery it builds on lives in src/ir/surgery.ts).
 */
import { Emitter } from '../ir/emit.js';
import type { Model } from '../ir/model.js';
import { paramNames } from '../ir/params.js';
import { extractSubgraph, featureCut, resolveValue, setOutput, valueInfoOf } from '../ir/surgery.js';
import { registerStandardOps } from '../ops/index.js';
import { Rng } from '../tensor.js';
import type { Module } from './module.js';

/** Options of {@link replaceHead}. */
export interface ReplaceHeadOptions {
  /** Value or node name to cut at (default: the one cut rule, {@link featureCut}). */
  cut?: string;
  /** Seed of the new head's initialization (default 0). */
  seed?: number;
  /** Name of the new output (default 'logits'). */
  outputName?: string;
  /** state_dict prefix of the head's parameters (default 'head': "head.0.weight", …). */
  prefix?: string;
}

/**
 * Removes everything after the cut and emits `head` on the cut value: the result computes
 * `head(features(input))` with the backbone's weights unchanged and the head freshly initialised from `seed`.
 * Records `graft.cut` and `graft.head_params` (JSON list) in the model metadata.
 */
export function replaceHead(model: Model, head: Module, opts: ReplaceHeadOptions = {}): Model {
  registerStandardOps();
  const cut = opts.cut !== undefined ? resolveValue(model.graph, opts.cut, 'replaceHead') : featureCut(model).value;
  const m = extractSubgraph(model, cut);
  const g = m.graph;
  const outputName = opts.outputName ?? 'logits';
  let x = cut;
  if (x === outputName && !g.inputs.some((v) => v.name === x)) {
    // cutting at the old output (e.g. a feature extractor's 'logits'): free the name for the new head
    x = g.fresh('features');
    g.rename(cut, x);
  }
  const before = new Set(g.initializers.keys());
  const e = new Emitter(g, m.opset);
  const prefix = opts.prefix ?? 'head';
  let y: string;
  try {
    y = head.emit(e, x, prefix, new Rng(opts.seed ?? 0));
  } catch (err) {
    const dims = valueInfoOf(m, x).shape?.map((d) => d ?? '?');
    throw new Error(
      `replaceHead: the new head does not fit the features at "${cut}" (shape ${dims ? `[${dims.join(', ')}]` : 'unknown'}): ${(err as Error).message}`,
    );
  }
  setOutput(e, y, outputName, 'replaceHead');
  m.metadata['graft.cut'] = x;
  m.metadata['graft.head_params'] = JSON.stringify(paramNames(m).filter((p) => !before.has(p)));
  return m;
}
