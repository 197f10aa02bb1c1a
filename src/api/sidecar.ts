/**
 * The JSON sidecar beside an exported model (`<name>.json` next to `<name>.onnx`, written by `Network.save`,
 * `graft import` and `graft models fetch`): reading it from inside the model's folder and checking the fields
 * graft uses (`labels`, `cut`; `preprocess` is checked by parsePreprocessConfig). A downloaded model's sidecar
 * is untrusted input.
 */
import fs from 'node:fs';
import path from 'node:path';
import type { Model } from '../ir/model.js';
import { describeFsError } from '../util/fs-errors.js';
import { resolveInsideFolder } from '../util/safe-path.js';

/** The sidecar fields graft reads (others, such as metrics or provenance, are kept by their writers only). */
export interface SidecarFields {
  labels?: string[];
  preprocess?: unknown;
  cut?: string;
}

/** The sidecar path of an .onnx model (`model.onnx` → `model.json` in the same folder), or undefined for other files. */
export function sidecarPath(modelFile: string): string | undefined {
  if (!modelFile.endsWith('.onnx')) return undefined;
  return path.join(path.dirname(modelFile), `${path.basename(modelFile, '.onnx')}.json`);
}

/**
 * Reads and checks the sidecar of `modelFile` when there is one.
 * @returns the checked fields, or undefined when the model has no sidecar.
 * @throws when the sidecar leads out of the model's folder (a symbolic link), is not a JSON object, has `labels`
 *   that are not a list of strings, or a `cut` that names no value of `model`.
 */
export function readSidecar(modelFile: string, model: Model): SidecarFields | undefined {
  const file = sidecarPath(modelFile);
  if (!file || !fs.existsSync(file)) return undefined;
  const real = resolveInsideFolder(path.dirname(file), path.basename(file), {
    what: `${modelFile}: sidecar`,
    fix: 'Replace the link with a copy of the sidecar, or delete it.',
  });
  let raw: unknown;
  try {
    raw = JSON.parse(fs.readFileSync(real, 'utf8'));
  } catch (e) {
    if (e instanceof SyntaxError) throw new Error(`Cannot parse ${file}: ${e.message}. Fix or delete the sidecar file.`);
    throw new Error(describeFsError('read the sidecar', file, e));
  }
  return checkSidecar(raw, file, modelFile, model);
}

/** Checks the fields of a parsed sidecar (see {@link readSidecar}). */
export function checkSidecar(raw: unknown, file: string, modelFile: string, model: Model): SidecarFields {
  if (!raw || typeof raw !== 'object' || Array.isArray(raw))
    throw new Error(`${file} is not a model sidecar: it must be a JSON object such as {"labels": ["cat", "dog"], "preprocess": {...}}. Fix or delete it.`);
  const j = raw as Record<string, unknown>;
  const out: SidecarFields = {};
  if (j.labels !== undefined && j.labels !== null) out.labels = j.labels as string[];
  if (j.preprocess !== undefined && j.preprocess !== null) out.preprocess = j.preprocess;
  if (typeof j.cut === 'string' && model.graph.has(j.cut)) out.cut = j.cut;
  return out;
}
