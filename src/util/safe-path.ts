/**
 * The one containment check for files graft reads on a model's behalf (ONNX external data, TensorFlow.js weight
 * shards, nsfwjs shards, sidecars and metadata beside a model): a name written inside (or next to) a model must
 * stay inside the model's folder, after symbolic links are resolved. A model downloaded from a stranger can
 * otherwise name `../../.ssh/id_rsa`, or ship `weights.bin -> /home/me/secret`, and have the file's bytes copied
 * into a converted model (the class of CVE-2024-27318 in Python's onnx package).
 */
import fs from 'node:fs';
import path from 'node:path';
import { errorCode } from './fs-errors.js';

/** A name that leads outside the model's folder, lexically or through a symbolic link. */
export class PathEscapeError extends Error {}

/** How a refusal reads: `${what} "${name}" escapes the model's folder <folder> ... ${fix}`. */
export interface ContainmentMessage {
  /** What names the file, e.g. `model.onnx: initializer "w": external data path`. */
  what: string;
  /** The sentence that says how to fix it, e.g. "Put the weight file beside the model." */
  fix: string;
}

/**
 * Resolves `name` against `folder` and checks that the file really lies inside it: refuses absolute paths,
 * drive letters, URLs, `..` segments that climb out, and names that reach outside through a symbolic link
 * (the file itself or a folder on the way). A name that merely starts with two dots (`..weights.bin`) is fine.
 * @returns the file's real path (symbolic links resolved) when it exists, so the caller reads exactly the
 *   file that was checked; the joined path when it does not exist (the caller's read then reports it missing).
 * @throws PathEscapeError naming the file, the folder and the fix.
 */
export function resolveInsideFolder(folder: string, name: string, msg: ContainmentMessage): string {
  const base = path.resolve(folder);
  const joined = path.resolve(base, name);
  const refuse = (detail: string) => new PathEscapeError(`${msg.what} "${name}" ${detail}. ${msg.fix}`);
  if (path.isAbsolute(name) || /^[A-Za-z]:[\\/]/.test(name) || /^[a-z][a-z0-9+.-]*:\/\//i.test(name) || !isWithin(base, joined))
    throw refuse(`escapes the model's folder ${base}; graft only reads files inside the model's folder`);
  const realBase = realpath(base) ?? base;
  const real = realpath(joined);
  if (real === undefined) return joined;
  if (!isWithin(realBase, real))
    throw refuse(
      `escapes the model's folder ${realBase} through a symbolic link (it resolves to ${real}); graft does not follow links out of a model's folder`,
    );
  return real;
}

/** True when `file` is `dir` itself or lies below it (both absolute and normalised). */
function isWithin(dir: string, file: string): boolean {
  const rel = path.relative(dir, file);
  if (rel === '') return true;
  if (path.isAbsolute(rel)) return false;
  const first = rel.split(path.sep)[0];
  return first !== '..';
}

/** The real path of `p`, or undefined when it does not exist (a dangling link included). */
function realpath(p: string): string | undefined {
  try {
    return fs.realpathSync(p);
  } catch (e) {
    if (errorCode(e) === 'ENOENT' || errorCode(e) === 'ENOTDIR') return undefined;
    throw e;
  }
}
