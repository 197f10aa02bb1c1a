/**
 * What `graft ui` lets a page reach: the session token every request must carry, and the folders it may read.
 * A file or folder named by a request must lie inside one of the chosen folders (after symbolic links are
 * resolved, by util/safe-path.ts's one containment check); a run must be a plain name inside the runs folder.
 */
import { randomBytes, timingSafeEqual } from 'node:crypto';
import path from 'node:path';
import { PathEscapeError, resolveInsideFolder } from '../util/safe-path.js';

/** An error with the HTTP status a route answers it with. */
export class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

/** A new random session token (32 bytes, URL-safe). */
export function newToken(): string {
  return randomBytes(32).toString('base64url');
}

/** Whether `given` is the session token (compared in constant time). */
export function tokenMatches(token: string, given: unknown): boolean {
  if (typeof given !== 'string') return false;
  const a = Buffer.from(token);
  const b = Buffer.from(given);
  return a.length === b.length && timingSafeEqual(a, b);
}

/**
 * The real path of `name` (absolute, or relative to the first folder) when it lies inside one of `folders`.
 * @throws HttpError 403 naming the path and the folders when it lies outside all of them.
 */
export function insideFolders(folders: readonly string[], name: string): string {
  if (typeof name !== 'string' || !name || name.includes('\0'))
    throw new HttpError(400, 'A path is required (a file or folder inside the folders graft ui serves).');
  // a relative name is relative to the first folder only; an absolute one may lie in any of them
  for (const folder of path.isAbsolute(name) ? folders : folders.slice(0, 1)) {
    const rel = path.isAbsolute(name) ? path.relative(folder, name) : name;
    if (path.isAbsolute(rel)) continue; // another drive
    try {
      return resolveInsideFolder(folder, rel, { what: 'graft ui: path', fix: '' });
    } catch (e) {
      if (!(e instanceof PathEscapeError)) throw e;
    }
  }
  throw new HttpError(
    403,
    `graft ui: ${name} is outside the folders it serves (${folders.join(', ')}). Start graft ui with that folder (graft ui <folder>) to use it.`,
  );
}

/**
 * The folder of the run `name` inside `runsDir`.
 * @throws HttpError 400 for a name that is not a plain run name (letters, digits, ".", "_", "-").
 */
export function runFolderOf(runsDir: string, name: string): string {
  if (!/^[\w.-]+$/.test(name) || name === '.' || name === '..')
    throw new HttpError(400, `"${name}" is not a run name; run names use letters, digits, ".", "_" and "-" only.`);
  return path.join(runsDir, name);
}
