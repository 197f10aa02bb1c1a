/**
 * The finishing touches of an imported model: its outputs (a softmax classifier gets graft's export shape —
 * `logits`, `probabilities`, `features`), the feature cut, and a preprocessing config guessed from the input.
 */

import { type PreprocessConfig, type PreprocessConfigInput, parsePreprocessConfig } from '../data/preprocess.js';
import { Emitter } from '../ir/emit.js';
import type { Node } from '../ir/graph.js';
import type { Model } from '../ir/model.js';
import type { KValue } from './keras-context.js';

/** Options of the importers. */
export interface ImportOptions {
  /** The batch dimension of the ONNX input: a symbolic name (default "N") or a fixed size. */
  batch?: string | number;
  /**
   * 'classifier' (default): a model whose single output is a rank-2 Softmax gets outputs `logits` (before the
   * softmax), `probabilities` and, when a pooled/flattened feature value is found, `features` — the shape of a
   * graft export, which `Network` fine-tunes from the logits. 'keras': outputs keep the Keras output layer names.
   */
  outputs?: 'classifier' | 'keras';
}

/** What finishOutputs needs from the converter. */
export interface OutputSource {
  /** Rank-2 pooled/flattened values in conversion order. */
  featureCandidates: string[];
}

/**
 * Sets the graph outputs (rank-4 NCHW values go back to Keras's NHWC), adds the classifier aliases, records
 * `graft.cut` (the last pooled/flattened value feeding the output) and prunes and sorts the graph.
 */
export function finishOutputs(model: Model, outs: KValue[], src: OutputSource, opts: ImportOptions): void {
  const g = model.graph;
  const e = new Emitter(g, model.opset, 'output/');
  const names = outs.map((v) => (v.layout === 'nchw' ? e.transpose(v.name, [0, 2, 3, 1]) : v.name));
  const info = (n: string) => ({ name: n, dtype: g.info(n)?.dtype ?? 'float32', shape: g.info(n)?.shape });
  const producers = g.producers();
  const soft = producers.get(names[0]!);
  const logits = soft?.inputs[0];
  const classifier =
    (opts.outputs ?? 'classifier') === 'classifier' &&
    names.length === 1 &&
    soft?.op === 'Softmax' &&
    e.rank(names[0]!) === 2 &&
    logits !== undefined &&
    !['logits', 'probabilities', 'features'].some((n) => g.has(n));
  const root = classifier ? logits : names[0]!;
  const ancestors = ancestorValues(root, producers);
  const cut = [...src.featureCandidates].reverse().find((v) => ancestors.has(v));
  if (cut) model.metadata['graft.cut'] = cut;
  if (classifier) {
    g.addNode('Identity', [logits], ['logits'], {}, 'output/logits');
    g.addNode('Identity', [names[0]!], ['probabilities'], {}, 'output/probabilities');
    g.outputs = [
      { ...info(logits), name: 'logits' },
      { ...info(names[0]!), name: 'probabilities' },
    ];
    if (cut) {
      g.addNode('Identity', [cut], ['features'], {}, 'output/features');
      g.outputs.push({ ...info(cut), name: 'features' });
    }
  } else g.outputs = names.map(info);
  g.prune();
  g.topoSort();
}

function ancestorValues(out: string, producers: Map<string, Node>): Set<string> {
  const seen = new Set<string>();
  const stack = [out];
  while (stack.length) {
    const v = stack.pop()!;
    if (seen.has(v)) continue;
    seen.add(v);
    for (const i of producers.get(v)?.inputs ?? []) if (i) stack.push(i);
  }
  return seen;
}

/** Overrides for {@link guessPreprocess}. */
export interface PreprocessGuess {
  mean?: number[];
  std?: number[];
  /** Raw pixels are divided by this (default 255: the model takes values in [0, 1]). */
  scale?: number;
  resize?: PreprocessConfig['resize'];
  /** For `resize: 'crop'`: the fraction kept by the centre crop (1: the largest centred square). */
  cropFraction?: number;
}

/**
 * A preprocessing config for an imported image model, from its NCHW input: size and channels from the input
 * shape, RGB, NCHW, mean 0 / std 1 unless given, stretch resize. Undefined when the input is not an image
 * (rank ≠ 4, unknown size, or not 1 or 3 channels).
 */
export function guessPreprocess(model: Model, over: PreprocessGuess = {}): PreprocessConfig | undefined {
  const input = model.graph.inputs.find((v) => !model.graph.initializers.has(v.name));
  const s = input?.shape;
  if (s?.length !== 4) return undefined;
  const [, c, h, w] = s;
  if ((c !== 1 && c !== 3) || typeof h !== 'number' || typeof w !== 'number') return undefined;
  const cfg: PreprocessConfigInput = {
    size: [h, w],
    channels: c,
    resize: over.resize ?? 'stretch',
    ...(over.cropFraction !== undefined ? { cropFraction: over.cropFraction } : {}),
    layout: 'NCHW',
    scale: over.scale ?? 255,
    ...(over.mean ? { mean: over.mean } : {}),
    ...(over.std ? { std: over.std } : {}),
  };
  return parsePreprocessConfig(cfg, `preprocessing guessed for ${model.graph.name}`);
}

/** Stores a preprocessing config (and optionally labels) in the model's metadata, as graft exports do. */
export function setPreprocessMetadata(model: Model, cfg: PreprocessConfig | undefined, labels?: readonly string[]): void {
  if (cfg) model.metadata['graft.preprocess'] = JSON.stringify(cfg);
  if (labels) model.metadata['graft.labels'] = JSON.stringify(labels);
}
