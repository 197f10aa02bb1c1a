/**
 * Teachable Machine exports (`@teachablemachine/image`, "Download my model"): `model.json` + `weights.bin` +
 * `metadata.json`. The metadata names the classes and marks the model as a Teachable Machine model, whose image
 * preprocessing is the library's own: the centre square of the picture, resized to `imageSize`, then
 * `pixel / 127 − 1` (`capture()` in @teachablemachine/image).
 */
import fs from 'node:fs';
import path from 'node:path';
import type { Model } from '../ir/model.js';
import { resolveInsideFolder } from '../util/safe-path.js';
import { guessPreprocess, type PreprocessGuess, setPreprocessMetadata } from './outputs.js';

/** The fields of Teachable Machine's metadata.json that graft uses. */
export interface TeachableMetadata {
  /** Class names, in output order. */
  labels: string[];
  imageSize?: number;
  packageName?: string;
  packageVersion?: string;
  tmVersion?: string;
  modelName?: string;
}

/** Teachable Machine's image normalisation: `pixel / 127 − 1`, i.e. scale 127, mean 1, std 1, centre square crop. */
export const TEACHABLE_PREPROCESS: PreprocessGuess = { scale: 127, mean: [1], std: [1], resize: 'crop', cropFraction: 1 };

/**
 * The Teachable Machine metadata beside a model.json (`metadata.json` in the same folder), or undefined when
 * there is none or it is not Teachable Machine's (it must have a `labels` list and a `tmVersion` or a
 * `@teachablemachine/…` `packageName`).
 * @throws when metadata.json is a symbolic link out of the model's folder.
 */
export function readTeachableMetadata(modelJson: string): TeachableMetadata | undefined {
  // a metadata.json that links out of the folder is refused (its labels would be copied into the sidecar)
  const file = resolveInsideFolder(path.dirname(path.resolve(modelJson)), 'metadata.json', {
    what: `${modelJson}: Teachable Machine metadata`,
    fix: 'Replace the link with a copy of the file, or delete it.',
  });
  let j: Record<string, unknown>;
  try {
    j = JSON.parse(fs.readFileSync(file, 'utf8')) as Record<string, unknown>;
  } catch {
    return undefined; // absent or not JSON: not a Teachable Machine export
  }
  const fromTm = typeof j.tmVersion === 'string' || (typeof j.packageName === 'string' && j.packageName.startsWith('@teachablemachine/'));
  if (!fromTm || !Array.isArray(j.labels)) return undefined;
  const str = (v: unknown) => (typeof v === 'string' ? v : undefined);
  return {
    labels: j.labels.map(String),
    imageSize: typeof j.imageSize === 'number' ? j.imageSize : undefined,
    packageName: str(j.packageName),
    packageVersion: str(j.packageVersion),
    tmVersion: str(j.tmVersion),
    modelName: str(j.modelName),
  };
}

/**
 * Records Teachable Machine's labels (when their number matches the model's classes) and, for an image input,
 * its preprocessing in the model's metadata, as `graft import` does for nsfwjs.
 */
export function applyTeachableMetadata(model: Model, meta: TeachableMetadata): void {
  model.metadata['graft.source'] = `Teachable Machine (${[meta.packageName, meta.packageVersion].filter(Boolean).join(' ') || `tmVersion ${meta.tmVersion}`})`;
  const cfg = guessPreprocess(model, TEACHABLE_PREPROCESS);
  const classes = model.graph.outputs.find((o) => o.name === 'probabilities' || o.name === 'logits')?.shape?.at(-1) ?? model.graph.outputs[0]?.shape?.at(-1);
  setPreprocessMetadata(model, cfg, meta.labels.length === classes ? meta.labels : undefined);
}
