/**
 * Importers: TensorFlow.js layers and graph models (model.json + shards, or nsfwjs's JS-wrapped bundles) →
 * graft Models, and {@link loadAnyModel}, which opens either an .onnx file or a TensorFlow.js model.
 */
import fs from 'node:fs';
import path from 'node:path';
import type { Model } from '../ir/model.js';
import { untieInitializerCopies } from '../ir/surgery.js';
import { loadModel } from '../onnx/io.js';
import { describeFsError } from '../util/fs-errors.js';
import { resolveInsideFolder } from '../util/safe-path.js';
import {
  loadNsfwjsModel,
  loadWrappedModelJson,
  NSFWJS_CLASSES,
  NSFWJS_INPUT_SIZE,
  NSFWJS_MODELS,
  type NsfwjsModelName,
  type UnwrappedTfjsModel,
} from './nsfwjs.js';
import { guessPreprocess, type ImportOptions, setPreprocessMetadata } from './outputs.js';
import { applyTeachableMetadata, readTeachableMetadata } from './teachable-machine.js';
import { importTfjsGraph } from './tfjs-graph.js';
import { fromModelJson, importTfjsLayers } from './tfjs-layers.js';
import type { TfjsWeightGroup } from './weights.js';

export * from './nsfwjs.js';
export { guessPreprocess, type ImportOptions, type PreprocessGuess, setPreprocessMetadata } from './outputs.js';
export { applyTeachableMetadata, readTeachableMetadata, TEACHABLE_PREPROCESS, type TeachableMetadata } from './teachable-machine.js';
export { importTfjsGraph, SUPPORTED_GRAPH_OPS } from './tfjs-graph.js';
export { importTfjsLayers, readModelJson, SUPPORTED_LAYERS, type TfjsLayersSource } from './tfjs-layers.js';
export { halfToFloat, readWeights, type TfjsWeightGroup, type TfjsWeightSpec } from './weights.js';

/** True when a model.json object is a TensorFlow.js graph model (converted SavedModel / frozen graph). */
export function isGraphModel(json: Record<string, unknown>): boolean {
  const topo = json.modelTopology as Record<string, unknown> | undefined;
  return json.format === 'graph-model' || (!!topo && Array.isArray(topo.node));
}

/** Converts an unwrapped TensorFlow.js model (layers or graph, decided from its model.json). */
export function importUnwrapped(m: UnwrappedTfjsModel, opts: ImportOptions = {}): Model {
  const src = {
    modelTopology: m.json.modelTopology,
    weightsManifest: (m.json.weightsManifest ?? []) as TfjsWeightGroup[],
    readShard: m.readShard,
    source: m.source,
  };
  return isGraphModel(m.json) ? importTfjsGraph({ ...src, signature: m.json.signature }, opts) : importTfjsLayers(src, opts);
}

/**
 * Imports one of the models bundled in the nsfwjs package with nsfwjs's own preprocessing (RGB / 255, no
 * mean/std, stretched to 224×224 or 299×299) and its five class names as labels.
 */
export function importNsfwjs(name: NsfwjsModelName, opts: ImportOptions = {}): Model {
  const model = importUnwrapped(loadNsfwjsModel(name), opts);
  model.metadata['graft.source'] = `nsfwjs ${name}`;
  const size = NSFWJS_INPUT_SIZE[name];
  setPreprocessMetadata(model, guessPreprocess(model, { scale: 255, resize: 'stretch' }), NSFWJS_CLASSES);
  if (!model.metadata['graft.preprocess'])
    throw new Error(`nsfwjs ${name}: expected a ${size}×${size} RGB input; the bundled model changed. Report this with the nsfwjs version.`);
  return model;
}

/**
 * Loads a model for graft from any supported file:
 * - `*.onnx` → {@link loadModel};
 * - a TensorFlow.js `model.json` (layers or graph model; shards beside it), or a folder holding one; a Teachable
 *   Machine `metadata.json` beside it gives the labels and Teachable Machine's preprocessing;
 * - nsfwjs's wrapped `model.min.js` (shards `*.min.js` beside it), or `nsfwjs:<MobileNetV2|MobileNetV2Mid|InceptionV3>`.
 * Imported models carry `graft.preprocess` (and `graft.cut`, `graft.labels` when known) in their metadata,
 * which `Network` reads when there is no sidecar.
 */
export function loadAnyModel(file: string, opts: ImportOptions = {}): Model {
  if (file.startsWith('nsfwjs:')) {
    const name = file.slice('nsfwjs:'.length) as NsfwjsModelName;
    if (!Object.hasOwn(NSFWJS_MODELS, name))
      throw new Error(
        `Unknown nsfwjs model "${name}" in "${file}"; use one of ${Object.keys(NSFWJS_MODELS)
          .map((n) => `nsfwjs:${n}`)
          .join(', ')}.`,
      );
    return importNsfwjs(name, opts);
  }
  let target = file;
  if (isDir(file)) {
    const name = ['model.json', 'model.min.js'].find((f) => fs.existsSync(path.join(file, f)));
    if (name) resolveInsideFolder(file, name, { what: `${file}: model file`, fix: 'Replace the link with a copy of the model file, or pass the file itself.' });
    const found = name && path.join(file, name);
    if (!found) {
      if (fs.readdirSync(file).some((f) => f.endsWith('.onnx'))) return untieInitializerCopies(loadModel(file)); // loadModel explains which .onnx to pass
      throw new Error(`${file} is a folder without model.json, model.min.js or .onnx file. Pass the model file itself.`);
    }
    target = found;
  }
  if (target.endsWith('.onnx')) return untieInitializerCopies(loadModel(target));
  if (target.endsWith('.js')) return importUnwrapped(loadWrappedModelJson(target), opts);
  if (target.endsWith('.json')) {
    let json: Record<string, unknown>;
    try {
      json = JSON.parse(fs.readFileSync(target, 'utf8')) as Record<string, unknown>;
    } catch (e) {
      if (e instanceof SyntaxError) throw new Error(`${target} is not valid JSON (${e.message}). Pass a TensorFlow.js model.json or an .onnx file.`);
      throw new Error(describeFsError('read model', target, e));
    }
    if (!json || typeof json !== 'object' || !('modelTopology' in json))
      throw new Error(
        `${target} is JSON but not a TensorFlow.js model.json (no "modelTopology"). Pass the model.json written by TensorFlow.js, or an .onnx file.`,
      );
    const src = fromModelJson(json, path.dirname(path.resolve(target)), target);
    const model = importUnwrapped({ json, readShard: src.readShard, source: target }, opts);
    const tm = readTeachableMetadata(target);
    if (tm) applyTeachableMetadata(model, tm);
    return model;
  }
  return loadModel(target);
}

function isDir(p: string): boolean {
  try {
    return fs.statSync(p).isDirectory();
  } catch {
    return false;
  }
}
