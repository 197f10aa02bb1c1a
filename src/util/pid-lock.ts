/**
 * A lock file holding the owner's pid, created with O_EXCL: one process at a time may own a study or a run
 * folder. A lock whose pid is no longer alive (left by a killed process) is taken over, and the caller is told.
 */
import fs from 'node:fs';
import path from 'node:path';
import { describeFsError } from './fs-errors.js';

/** Options of {@link acquirePidLock}. */
export interface PidLockOptions {
  /** What is locked, for the message when another process holds it (e.g. "the study runs/x/study.jsonl"). */
  what: string;
  /** The command to wait for, for that message (e.g. "graft tune"). */
  command: string;
  /** What to do once it is free (e.g. "resume"). */
  retry: string;
  /** Called when a stale lock of a dead process is taken over (with that pid). */
  onStale?: (pid: number) => void;
}

/** A held lock. */
export interface PidLock {
  readonly file: string;
  /** Removes the lock file if this process still owns it. Safe to call twice. */
  release(): void;
}

/** Whether a process with this pid exists (EPERM: it exists but belongs to someone else). */
export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * Creates `file` holding this process's pid.
 * @throws naming `what`, the other pid and the lock file when a live process holds it.
 */
export function acquirePidLock(file: string, opts: PidLockOptions): PidLock {
  fs.mkdirSync(path.dirname(path.resolve(file)), { recursive: true });
  for (let tries = 0; tries < 2; tries++) {
    try {
      fs.writeFileSync(file, `${process.pid}\n`, { flag: 'wx' });
      return { file, release: () => releasePidLock(file) };
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw new Error(describeFsError('create the lock file', file, e));
    }
    let pid = 0;
    try {
      pid = Number(fs.readFileSync(file, 'utf8').trim());
    } catch {
      // removed in between by its owner: try again
    }
    if (pid && pid !== process.pid && isAlive(pid))
      throw new Error(
        `${capitalize(opts.what)} is being run by process ${pid}. Wait for it to finish (or stop it), then ${opts.retry}; if that process is not ${opts.command}, delete ${file}.`,
      );
    fs.rmSync(file, { force: true }); // a stale lock left by a killed process
    if (pid && pid !== process.pid) opts.onStale?.(pid);
  }
  throw new Error(`Could not lock ${opts.what}; delete ${file} if no other ${opts.command} is running on it.`);
}

function releasePidLock(file: string): void {
  try {
    if (fs.readFileSync(file, 'utf8').trim() === String(process.pid)) fs.rmSync(file, { force: true });
  } catch {
    // no lock to release
  }
}

function capitalize(s: string): string {
  return s.charAt(0).toUpperCase() + s.slice(1);
}
