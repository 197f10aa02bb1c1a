/** Crash-safe file writes: write a temp file beside the target, fsync it, then rename over the target. */
import nodeFs from 'node:fs';
import path from 'node:path';
import { describeFsError } from './fs-errors.js';
import { isAlive } from './pid-lock.js';

/** The file-system calls {@link atomicWrite} uses; tests inject failing versions. */
export interface AtomicFs {
  openSync: typeof nodeFs.openSync;
  writeSync: (fd: number, buffer: Uint8Array, offset: number, length: number, position: number | null) => number;
  fsyncSync: typeof nodeFs.fsyncSync;
  closeSync: typeof nodeFs.closeSync;
  renameSync: typeof nodeFs.renameSync;
  rmSync: typeof nodeFs.rmSync;
  mkdirSync: typeof nodeFs.mkdirSync;
}

/** Options for {@link atomicWrite}. */
export interface AtomicWriteOptions {
  /** File mode for a newly created file (default 0o644 before umask). */
  mode?: number;
  /** Replacement file-system functions (for tests that simulate a full disk). */
  fs?: Partial<AtomicFs>;
}

let counter = 0;

/** A temp path in the same folder as `file` (so the final rename stays on one file system). */
export function tempPathFor(file: string): string {
  return path.join(path.dirname(path.resolve(file)), `.${path.basename(file)}.tmp-${process.pid}-${Date.now().toString(36)}-${counter++}`);
}

/** The names {@link tempPathFor} makes: `.<name>.tmp-<pid>-<base-36 time>-<counter>`. */
const TEMP_NAME = /^\..+\.tmp-(\d+)-[0-9a-z]+-\d+$/;

/**
 * Removes the temp files {@link atomicWrite} left in `dir` (and its subfolders) when its process was killed
 * mid-write: only names {@link tempPathFor} makes, and only those whose writer (the pid in the name) is no longer
 * alive, so a live writer's temp is never touched. Call it while holding the lock of the folder. Returns the
 * removed paths.
 */
export function removeOrphanTemps(dir: string): string[] {
  const removed: string[] = [];
  let entries: nodeFs.Dirent[];
  try {
    entries = nodeFs.readdirSync(dir, { withFileTypes: true });
  } catch {
    return removed; // no folder yet
  }
  for (const e of entries) {
    const f = path.join(dir, e.name);
    if (e.isDirectory()) removed.push(...removeOrphanTemps(f));
    else if (e.isFile()) {
      const m = TEMP_NAME.exec(e.name);
      if (m && Number(m[1]) !== process.pid && !isAlive(Number(m[1]))) {
        nodeFs.rmSync(f, { force: true });
        removed.push(f);
      }
    }
  }
  return removed;
}

/** Writes all of `bytes` at the current position of `fd`, looping over short writes. */
export function writeAll(fs: Pick<AtomicFs, 'writeSync'>, fd: number, bytes: Uint8Array, position: number | null = null): void {
  let done = 0;
  while (done < bytes.length) {
    const n = fs.writeSync(fd, bytes, done, bytes.length - done, position === null ? null : position + done);
    if (n <= 0) throw Object.assign(new Error('write returned 0 bytes'), { code: 'EIO' });
    done += n;
  }
}

/**
 * Replaces `file` with `data` atomically: readers see either the old or the new content, never a mix,
 * even if the process dies or the disk fills up mid-write. Parent folders are created.
 * On failure the temp file is removed, the old file is left intact, and the error says why
 * (e.g. "the disk is full (ENOSPC). Free some disk space …").
 * @param file target path.
 * @param data the complete new content (strings are written as UTF-8).
 */
export function atomicWrite(file: string, data: string | Uint8Array, opts: AtomicWriteOptions = {}): void {
  const fs: AtomicFs = { ...(nodeFs as unknown as AtomicFs), ...opts.fs };
  const bytes = typeof data === 'string' ? Buffer.from(data, 'utf8') : data;
  const dir = path.dirname(path.resolve(file));
  try {
    fs.mkdirSync(dir, { recursive: true });
  } catch (e) {
    throw new Error(describeFsError('create the folder', dir, e));
  }
  const tmp = tempPathFor(file);
  let fd: number | undefined;
  try {
    fd = fs.openSync(tmp, 'w', opts.mode ?? 0o644);
    writeAll(fs, fd, bytes);
    fs.fsyncSync(fd);
    fs.closeSync(fd);
    fd = undefined;
    fs.renameSync(tmp, file);
  } catch (e) {
    if (fd !== undefined) {
      try {
        fs.closeSync(fd);
      } catch {
        // already failing; the original error is the one to report
      }
    }
    try {
      fs.rmSync(tmp, { force: true });
    } catch {
      // best effort
    }
    throw new Error(describeFsError('write', file, e, 'Any previous version of the file is unchanged.'));
  }
  syncDir(dir);
}

/** Flushes a folder's entry table so a completed rename survives a power loss (best effort; a no-op where unsupported). */
export function syncDir(dir: string): void {
  let fd: number | undefined;
  try {
    fd = nodeFs.openSync(dir, 'r');
    nodeFs.fsyncSync(fd);
  } catch {
    // some platforms (Windows) cannot fsync folders
  } finally {
    if (fd !== undefined) nodeFs.closeSync(fd);
  }
}
