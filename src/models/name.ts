/** Telling a registry name (`mobilenetv2`, `nsfwjs:MobileNetV2`) from a model file path, and finding its registry entry. */
import fs from 'node:fs';
import path from 'node:path';
import { findModel, loadRegistry, type ModelEntry } from './registry.js';

/** A registry name's form (the registry schema's `name` rule): letters, digits and `. _ : + -`, no path separator. */
const NAME = /^[A-Za-z0-9][A-Za-z0-9._:+-]*$/;

/**
 * Whether `ref` reads as a registry name rather than a file: it has the form of a name, does not end in
 * `.onnx` or `.json`, and no file of that name exists (relative to `cwd`). `mnist` is the data set, not a model.
 */
export function isModelName(ref: string, cwd = process.cwd()): boolean {
  if (!NAME.test(ref) || /\.(onnx|json)$/i.test(ref)) return false;
  try {
    return !fs.existsSync(path.resolve(cwd, ref));
  } catch {
    return true;
  }
}

/**
 * The registry entry a model reference names, or undefined for a file path or an `nsfwjs:` name (the importer
 * reads those in-process).
 * @throws for a name the registry does not know, saying no such file exists either.
 */
export function registryEntryOf(ref: string): ModelEntry | undefined {
  if (!isModelName(ref) || /^nsfwjs:/i.test(ref)) return undefined;
  try {
    return findModel(ref, loadRegistry());
  } catch (e) {
    throw notFileNorModel(ref, e);
  }
}

/** The message for a reference that is neither a file nor a registry name: what was looked for, and the registry's own error. */
export function notFileNorModel(ref: string, registryError: unknown, cwd = process.cwd()): Error {
  return new Error(`No file ${path.resolve(cwd, ref)}, and not a registry model: ${(registryError as Error).message}`);
}
