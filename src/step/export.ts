/**
 * Inference export: the trained forward model as a plain ONNX graph any runtime can load —
 * parameters folded back into initializers, BatchNormalization in inference mode, Dropout removed,
 * and (optionally) a Softmax `probabilities` output plus a `features` output.
 */
import { Emitter } from '../ir/emit.js';
import type { Model } from '../ir/model.js';
import { registerStandardOps } from '../ops/index.js';
import { toInferenceGraph } from './mode.js';

export interface ExportOptions {
  /** Add a Softmax over the last axis, output as "probabilities" (default true). */
  probabilities?: boolean;
  /** Also expose this intermediate value as output "features". */
  features?: string;
  /** Keep the raw model output as "logits" (default true). */
  logits?: boolean;
  /** Calibration temperature: "probabilities" = Softmax(logits / temperature) (a Div before the Softmax; default 1, no Div). */
  temperature?: number;
}

/** Builds the inference model from a forward model whose initializers already hold the trained values. */
export function toInferenceModel(trained: Model, opts: ExportOptions = {}): Model {
  registerStandardOps();
  const m = trained.clone();
  const g = m.graph;
  toInferenceGraph(g);
  const out = g.outputs[0];
  if (!out) throw new Error('The model has no output to export.');
  const e = new Emitter(g, m.opset, 'export/');
  const outputs: typeof g.outputs = [];
  if (opts.logits ?? true) {
    if (out.name !== 'logits') {
      if (g.has('logits')) throw new Error('The model already has a value named "logits" that is not its output; rename it before exporting.');
      g.addNode('Identity', [out.name], ['logits'], {}, 'export/logits');
    }
    outputs.push({ name: 'logits', dtype: 'float32', shape: g.info(out.name)?.shape });
  }
  if (opts.probabilities ?? true) {
    const t = opts.temperature ?? 1;
    if (!(t > 0 && Number.isFinite(t))) throw new Error(`Export temperature must be a positive number, got ${t}; fit it with graft train or leave it out.`);
    const scaled = t === 1 ? out.name : e.div(out.name, e.scalar(t));
    const p = e.op('Softmax', [scaled], { axis: -1 });
    g.addNode('Identity', [p], ['probabilities'], {}, 'export/probabilities');
    outputs.push({ name: 'probabilities', dtype: 'float32', shape: g.info(out.name)?.shape });
  }
  if (opts.features) {
    if (!g.has(opts.features)) throw new Error(`Feature value "${opts.features}" is not in the model; pick a value listed by \`graft inspect\`.`);
    // a re-exported model's cut is already named 'features' (Network.load of a saved model): no alias needed
    if (opts.features !== 'features') g.addNode('Identity', [opts.features], ['features'], {}, 'export/features');
    outputs.push({ name: 'features', dtype: 'float32', shape: g.info(opts.features)?.shape });
  }
  g.outputs = outputs;
  g.prune();
  g.topoSort();
  m.metadata = { ...m.metadata, 'graft.role': 'inference' };
  return m;
}
