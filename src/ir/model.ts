import type { Tensor } from '../tensor.js';
import { Graph } from './graph.js';

/** Opset graft emits when it builds a model from scratch. Imported models keep their own (13–21). */
export const DEFAULT_OPSET = 17;
export const MIN_OPSET = 13;
export const MAX_OPSET = 21;

/** A model: one graph, the default-domain opset it targets, and string metadata (ONNX metadata_props). */
export class Model {
  graph: Graph;
  opset: number;
  /** Opsets of other domains the model imports (kept for round trips). */
  otherOpsets: { domain: string; version: number }[] = [];
  metadata: Record<string, string> = {};
  producer = 'graft';
  irVersion = 8;

  constructor(graph: Graph = new Graph(), opset = DEFAULT_OPSET) {
    this.graph = graph;
    this.opset = opset;
  }

  clone(): Model {
    const m = new Model(this.graph.clone(), this.opset);
    m.otherOpsets = [...this.otherOpsets];
    m.metadata = { ...this.metadata };
    m.producer = this.producer;
    m.irVersion = this.irVersion;
    return m;
  }
}

/**
 * A copy of `model` with trained values folded back into its initializers: each `[name, tensor]` of `values`
 * whose name is an initializer of the model replaces it; other names (optimizer state, values of another
 * part of the network) are ignored. The one "fold trained state into the model" step of training, adaptation,
 * tuning and resuming.
 */
export function withInitializers(model: Model, values: Iterable<readonly [string, Tensor]>): Model {
  const m = model.clone();
  for (const [k, v] of values) if (m.graph.initializers.has(k)) m.graph.initializers.set(k, v);
  return m;
}
