/**
 * The JSON sidecar beside an exported model (`<name>.json` next to `<name>.onnx`, written by `Network.save`,
 * `graft import` and `graft models fetch`): reading it from inside the model's folder and checking the fields
 * graft uses (`labels`, `cut`; `preprocess` is checked by parsePreprocessConfig). A downloaded model's sidecar
 * is untrusted input: a wrong field is one clear error, never silently ignored or reinterpreted.
 */
import fs from 'node:fs';
import path from 'node:path';
import type { Model } from '../ir/model.js';
import { featureCut } from '../ir/surgery.js';
import { editDistance } from '../util/edit-distance.js';
import { describeFsError } from '../util/fs-errors.js';
import { resolveInsideFolder } from '../util/safe-path.js';

/** The sidecar fields graft reads (others, such as metrics or provenance, are kept by their writers only). */
export interface SidecarFields {
  labels?: string[];
  preprocess?: unknown;
  cut?: string;
  /** Calibration temperature (> 0): probabilities are softmax(logits / temperature). */
  temperature?: number;
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
  if (j.labels !== undefined && j.labels !== null) {
    const l = j.labels;
    if (!Array.isArray(l) || l.some((x) => typeof x !== 'string'))
      throw new Error(
        `${file}: "labels" must be an array of class names (strings), e.g. ["cat", "dog"], but it is ${describe(l)}. Fix "labels" in the sidecar.`,
      );
    out.labels = l as string[];
  }
  if (j.preprocess !== undefined && j.preprocess !== null) out.preprocess = j.preprocess;
  if (j.cut !== undefined && j.cut !== null) {
    if (typeof j.cut !== 'string')
      throw new Error(`${file}: "cut" must be the name of a value in the model (a string), but it is ${describe(j.cut)}. Fix or delete "cut".`);
    if (!model.graph.has(j.cut))
      throw new Error(
        `${file}: "cut" names "${j.cut}", which is not a value in ${modelFile}. Candidates: ${cutCandidates(model, j.cut).join(', ')}. ` +
          `Fix "cut" in the sidecar (\`graft inspect ${modelFile}\` lists the values and the suggested cut), or delete it to use the suggested one.`,
      );
    out.cut = j.cut;
  }
  if (j.temperature !== undefined && j.temperature !== null) {
    if (typeof j.temperature !== 'number' || !Number.isFinite(j.temperature) || j.temperature <= 0)
      throw new Error(
        `${file}: "temperature" must be a positive number (probabilities are softmax(logits / temperature)), but it is ${describe(j.temperature)}. Fix it, or delete it to use uncalibrated probabilities (temperature 1).`,
      );
    out.temperature = j.temperature;
  }
  return out;
}

/** A few value names to offer instead of a wrong cut: the suggested cut first, then the names closest to `wrong`. */
function cutCandidates(model: Model, wrong: string): string[] {
  const names = [...new Set(model.graph.nodes.flatMap((n) => n.outputs).filter((v) => v))];
  let suggested: string | undefined;
  try {
    suggested = featureCut(model).value;
  } catch {
    // no classifier: no suggestion, the closest names still help
  }
  const closest = names
    .filter((n) => n !== suggested)
    .map((n) => ({ n, d: editDistance(n, wrong) }))
    .sort((a, b) => a.d - b.d)
    .slice(0, suggested ? 4 : 5)
    .map((x) => `"${x.n}"`);
  return suggested ? [`"${suggested}" (the suggested cut)`, ...closest] : closest;
}

function describe(v: unknown): string {
  if (typeof v === 'string') return `the string ${JSON.stringify(v.length > 40 ? `${v.slice(0, 40)}…` : v)}`;
  if (Array.isArray(v)) return `a list holding ${describe(v.find((x) => typeof x !== 'string'))}`;
  return v === null ? 'null' : typeof v === 'object' ? 'an object' : `${typeof v} ${String(v)}`;
}
