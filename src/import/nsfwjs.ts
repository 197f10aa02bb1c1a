/**
 * Loader for the models bundled in the `nsfwjs` npm package (4.x). nsfwjs ships each TensorFlow.js model as
 * browserify UMD bundles in `dist/models/<name>/`: `model.min.js` exports the model.json object (as a JS
 * object literal) and each `group1-shardKofN.min.js` exports one weight shard as a base64 string. This module
 * unwraps them into the plain model.json + shard bytes that {@link importTfjsLayers} and
 * {@link importTfjsGraph} read. No JavaScript from these files is ever run: the object literal is read with a
 * data-only parser ({@link parseJsLiteral}) and the base64 string with a regular expression.
 */
import fs from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { describeFsError } from '../util/fs-errors.js';
import { resolveInsideFolder } from '../util/safe-path.js';
import { JsLiteralError, parseJsLiteral } from './js-literal.js';
import type { ShardReader } from './weights.js';

/** The models nsfwjs bundles, by the names nsfwjs uses, and their folders under dist/models. */
export const NSFWJS_MODELS = { MobileNetV2: 'mobilenet_v2', MobileNetV2Mid: 'mobilenet_v2_mid', InceptionV3: 'inception_v3' } as const;

/** A model name nsfwjs knows. */
export type NsfwjsModelName = keyof typeof NSFWJS_MODELS;

/**
 * nsfwjs's input normalisation (src/index.ts `infer`): pixels as float / 255 (RGB in [0, 1], no mean/std),
 * resized with `tf.image.resizeBilinear(..., alignCorners=true)` to a square of this size, no crop.
 */
export const NSFWJS_INPUT_SIZE: Record<NsfwjsModelName, number> = { MobileNetV2: 224, MobileNetV2Mid: 224, InceptionV3: 299 };

/** The class names of every nsfwjs model, in output order (nsfwjs's NSFW_CLASSES). */
export const NSFWJS_CLASSES = ['Drawing', 'Hentai', 'Neutral', 'Porn', 'Sexy'] as const;

/** An unwrapped TensorFlow.js model: its model.json object and a reader for its shards. */
export interface UnwrappedTfjsModel {
  /** The model.json content (modelTopology, weightsManifest, format...). */
  json: Record<string, unknown>;
  /** Reads a shard named in the manifest (e.g. "group1-shard1of1") and returns its bytes. */
  readShard: ShardReader;
  /** Where the model came from (for messages). */
  source: string;
}

/** The folder of a bundled nsfwjs model (throws with an install hint when nsfwjs is missing). */
export function nsfwjsModelDir(name: NsfwjsModelName): string {
  const dir = Object.hasOwn(NSFWJS_MODELS, name) ? NSFWJS_MODELS[name] : undefined;
  if (!dir) throw new Error(`Unknown nsfwjs model "${name}"; nsfwjs bundles ${Object.keys(NSFWJS_MODELS).join(', ')}.`);
  let entry: string;
  try {
    entry = createRequire(import.meta.url).resolve('nsfwjs');
  } catch {
    throw new Error(`Cannot find the nsfwjs package to load its ${name} model. Install it with \`npm install nsfwjs@4.3.0\`.`);
  }
  // entry is <pkg>/dist/cjs/index.js; the models sit in <pkg>/dist/models
  return path.join(path.dirname(entry), '..', 'models', dir);
}

/**
 * Loads a bundled nsfwjs model by name (e.g. "MobileNetV2"), or any folder laid out like nsfwjs's
 * (`model.min.js` + `*.min.js` shards). Nothing is written to disk.
 */
export function loadNsfwjsModel(nameOrDir: NsfwjsModelName | string): UnwrappedTfjsModel {
  const dir = Object.hasOwn(NSFWJS_MODELS, nameOrDir) ? nsfwjsModelDir(nameOrDir as NsfwjsModelName) : nameOrDir;
  const modelFile = path.join(dir, 'model.min.js');
  return loadWrappedModelJson(modelFile);
}

/**
 * Loads a model.json wrapped as a JS module (nsfwjs's `model.min.js`); shards are read from `<shard>.min.js`
 * (base64, wrapped) beside it, or from the plain `<shard>` file when no wrapped one exists.
 */
export function loadWrappedModelJson(modelFile: string): UnwrappedTfjsModel {
  const json = unwrapModuleObject(modelFile);
  if (!json || typeof json !== 'object' || !('modelTopology' in json))
    throw new Error(`${modelFile} does not export a TensorFlow.js model.json object (no "modelTopology"). Pass nsfwjs's model.min.js or a model.json.`);
  const dir = path.dirname(modelFile);
  const readShard: ShardReader = (shard) => {
    const inside = (name: string) =>
      resolveInsideFolder(dir, name, {
        what: `${modelFile}: weight shard`,
        fix: 'Keep the shard files themselves (not symbolic links) beside the model file and list them in weightsManifest by file name.',
      });
    const wrapped = inside(`${shard}.min.js`);
    if (fs.existsSync(wrapped)) return unwrapBase64Shard(wrapped);
    const plain = inside(shard);
    if (fs.existsSync(plain)) return new Uint8Array(fs.readFileSync(plain));
    throw new Error(
      `Weight shard "${shard}" of ${modelFile} is missing: neither ${wrapped} nor ${plain} exists. Keep the shard files beside the model file (re-install nsfwjs or re-download the model).`,
    );
  };
  return { json: json as Record<string, unknown>, readShard, source: modelFile };
}

/**
 * Reads the data a wrapped model file exports, WITHOUT running it: finds the one `exports = {…}` (or `[…]`)
 * assignment (nsfwjs's bundles write `n.exports={modelTopology:…}` inside a browserify wrapper) and parses that
 * literal with {@link parseJsLiteral}, which accepts only data. The rest of the file (the wrapper) is never
 * executed or interpreted.
 * @throws when the file has no such literal, more than one, or the literal holds anything but data (a call,
 *   an identifier, an operator...), naming the file and the line and column.
 */
export function unwrapModuleObject(file: string): unknown {
  const src = readText(file);
  const refuse = (why: string) =>
    new Error(
      `${file} is not a wrapped model.json graft can read: ${why}. graft never runs JavaScript from a model; it only reads a pure-data \`exports = {...}\` object literal (as in nsfwjs's model.min.js). Pass a plain model.json instead (\`graft import <model.json>\`).`,
    );
  const assign = /\bexports\s*=\s*(?=[{[])/g;
  const first = assign.exec(src);
  if (!first) throw refuse('it has no `exports = {...}` object literal');
  let parsed: { value: unknown; end: number };
  try {
    parsed = parseJsLiteral(src, assign.lastIndex);
  } catch (e) {
    if (e instanceof JsLiteralError) throw refuse(`the exported value is not pure data (${e.message})`);
    throw e;
  }
  assign.lastIndex = parsed.end;
  if (assign.exec(src)) throw refuse('it has more than one `exports = {...}` literal, so which one is the model is ambiguous');
  return parsed.value;
}

/** Extracts the base64 payload of a wrapped shard (`...exports="<base64>"...`) without executing it. */
export function unwrapBase64Shard(file: string): Uint8Array {
  const src = readText(file);
  const m = /exports\s*=\s*"([A-Za-z0-9+/=]*)"/.exec(src);
  if (!m)
    throw new Error(
      `${file} is not a wrapped weight shard (no \`exports="<base64>"\` found). Re-install nsfwjs, or pass the model's plain .bin shards beside a model.json.`,
    );
  return new Uint8Array(Buffer.from(m[1]!, 'base64'));
}

function readText(file: string): string {
  try {
    return fs.readFileSync(file, 'utf8');
  } catch (e) {
    throw new Error(describeFsError('read model file', file, e));
  }
}
