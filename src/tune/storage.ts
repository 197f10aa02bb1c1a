/**
 * The study log: an append-only JSON Lines file (`study.jsonl`) that is the single source of truth of a
 * study. Every trial start and end is fsync'ed before the study moves on, so after a kill (or power loss)
 * the log holds every finished trial exactly once; a trial that was running has a `start` without an `end`
 * and is re-run from scratch on resume (with `attempt` + 1, after an `interrupted` record). A torn last line
 * (a write cut by the kill) is dropped. A lock file (`study.jsonl.lock`, holding the pid) keeps two
 * processes from running the same study at once.
 */
import fs from 'node:fs';
import path from 'node:path';
import { syncDir } from '../util/atomic-write.js';
import { describeFsError } from '../util/fs-errors.js';
import { toJsonLine } from '../util/jsonl.js';
import { acquirePidLock } from '../util/pid-lock.js';
import { diffSpaces, type Params, spaceHash } from './space.js';
import type { StudyIdentity, TrialRecord, TrialState } from './types.js';

/** Version of the log format (the `format` field of the header). */
export const STUDY_FORMAT = 1;

/** One line of the study log. */
export type StudyEvent =
  | { type: 'study'; format: number; identity: StudyIdentity; spaceHash: string; created: string; settings?: Record<string, unknown> }
  | { type: 'session'; pid: number; resume: boolean; t: string; settings?: Record<string, unknown> }
  | { type: 'start'; trial: number; attempt: number; params: Params; t: number }
  | { type: 'report'; trial: number; attempt: number; step: number; value: number }
  | { type: 'end'; trial: number; attempt: number; state: Exclude<TrialState, 'running'>; value?: number; error?: string; seconds: number }
  | { type: 'interrupted'; trial: number; attempt: number; t: number };

/** A study log opened for appending. */
export class StudyLog {
  private fd: number | undefined;
  private readonly lockFile: string;
  private release: (() => void) | undefined;

  private constructor(
    readonly file: string,
    readonly identity: StudyIdentity,
    /** Replayed trials by id. */
    readonly trials: Map<number, TrialRecord>,
  ) {
    this.lockFile = `${file}.lock`;
  }

  /**
   * Creates a new study log (and its folder) with its header, or opens an existing one for `resume`.
   * @throws when the file exists and `resume` is false, when it belongs to a different study identity
   * (space, direction, metric, objective), or when another live process holds the study's lock.
   */
  static open(
    file: string,
    identity: StudyIdentity,
    opts: { resume: boolean; settings?: Record<string, unknown>; onWarning?: (message: string) => void },
  ): StudyLog {
    const exists = fs.existsSync(file) && fs.statSync(file).size > 0;
    if (exists && !opts.resume) {
      const n = readStudy(file).trials.size;
      throw new Error(
        `The study ${file} already exists (${n} trial${n === 1 ? '' : 's'}). Pass --resume to continue it, or choose another study.name (or delete ${path.dirname(file)}) to start over.`,
      );
    }
    const log = new StudyLog(file, identity, new Map());
    log.lock(opts.onWarning);
    try {
      if (exists) {
        const old = readStudy(file, { repair: true });
        checkCompatible(file, old.identity, identity);
        for (const [k, t] of old.trials) log.trials.set(k, t);
      }
      log.fd = fs.openSync(file, 'a');
      if (!exists) {
        log.append(
          { type: 'study', format: STUDY_FORMAT, identity, spaceHash: spaceHash(identity.space), created: new Date().toISOString(), settings: opts.settings },
          true,
        );
        syncDir(path.dirname(path.resolve(file)));
      }
      log.append({ type: 'session', pid: process.pid, resume: exists, t: new Date().toISOString(), settings: opts.settings }, true);
    } catch (e) {
      log.close();
      throw e;
    }
    return log;
  }

  /** Appends one event; `sync` waits until it is on disk (fsync), which also flushes every earlier line. */
  append(ev: StudyEvent, sync = false): void {
    if (this.fd === undefined) throw new Error(`The study log ${this.file} is closed; this is a bug in graft tune.`);
    try {
      fs.writeSync(this.fd, `${toJsonLine(ev)}\n`);
      if (sync) fs.fsyncSync(this.fd);
    } catch (e) {
      throw new Error(describeFsError('append to the study log', this.file, e, 'The study stops; resume it with --resume once the problem is fixed.'));
    }
    applyEvent(this.trials, ev);
  }

  /** Closes the file and releases the lock. Safe to call twice. */
  close(): void {
    if (this.fd !== undefined) {
      try {
        fs.fsyncSync(this.fd);
        fs.closeSync(this.fd);
      } catch {
        // best effort: every important line was already synced
      }
      this.fd = undefined;
    }
    this.release?.();
  }

  private lock(onWarning?: (message: string) => void): void {
    this.release = acquirePidLock(this.lockFile, {
      what: `the study ${this.file}`,
      command: 'graft tune',
      retry: 'resume',
      onStale: (pid) => onWarning?.(`taking over the lock of the study ${this.file} left by process ${pid}, which is no longer running`),
    }).release;
  }
}

/** Throws a clear error when a log was written for a different study. */
export function checkCompatible(file: string, old: StudyIdentity, now: StudyIdentity): void {
  const diffs = diffSpaces(old.space, now.space);
  if (diffs.length)
    throw new Error(
      `The study ${file} was created with a different search space (${diffs.join('; ')}). Restore the original space to resume it, or give the new space its own study.name.`,
    );
  for (const k of ['direction', 'metric', 'objective'] as const)
    if (old[k] !== now[k])
      throw new Error(
        `The study ${file} was created with ${k} "${old[k]}", this config has "${now[k]}". Use the original ${k} to resume it, or choose another study.name.`,
      );
}

/** Applies one event to the replayed trials. */
function applyEvent(trials: Map<number, TrialRecord>, ev: StudyEvent): void {
  switch (ev.type) {
    case 'start':
      trials.set(ev.trial, { id: ev.trial, attempt: ev.attempt, params: ev.params, state: 'running', reports: new Map(), started: ev.t });
      break;
    case 'report': {
      const t = trials.get(ev.trial);
      if (t && t.attempt === ev.attempt && t.state === 'running') t.reports.set(ev.step, Number(ev.value));
      break;
    }
    case 'end': {
      const t = trials.get(ev.trial);
      if (!t || t.attempt !== ev.attempt || t.state !== 'running') break; // a stale or duplicate end never overrides a result
      t.state = ev.state;
      if (ev.value !== undefined) t.value = Number(ev.value);
      if (ev.error !== undefined) t.error = ev.error;
      t.seconds = ev.seconds;
      break;
    }
    default:
      break;
  }
}

/** A study as read from its log. */
export interface StudyContents {
  identity: StudyIdentity;
  created: string;
  settings?: Record<string, unknown>;
  /** Trials by id (latest attempt of each). */
  trials: Map<number, TrialRecord>;
  /** Attempts that were interrupted by a killed study, per trial id. */
  interruptions: Map<number, number>;
  /** Number of times the study was started (1 + resumes). */
  sessions: number;
}

/**
 * Reads and replays a study log.
 * @param opts.repair cut a torn last line off the file (a write interrupted by a kill), so appends start on a fresh line.
 * @throws when the file is missing, is not a study log, or has a corrupt line other than the last.
 */
export function readStudy(file: string, opts: { repair?: boolean } = {}): StudyContents {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (e) {
    throw new Error(describeFsError('read the study', file, e));
  }
  const lines = text.split('\n');
  const torn = !text.endsWith('\n') && text.length > 0;
  if (torn && opts.repair) {
    fs.truncateSync(file, Buffer.byteLength(text.slice(0, text.lastIndexOf('\n') + 1)));
  }
  const events: StudyEvent[] = [];
  for (let i = 0; i < lines.length; i++) {
    const l = lines[i]!.trim();
    if (!l) continue;
    try {
      events.push(JSON.parse(l) as StudyEvent);
    } catch {
      if (i === lines.length - 1 && torn) break;
      throw new Error(`${file}:${i + 1} is not valid JSON, so the study log is damaged. Delete that line (a trial on it will be re-run) and resume.`);
    }
  }
  const head = events[0];
  if (head?.type !== 'study')
    throw new Error(`${file} is not a graft tune study log (its first line is not a "study" header). Point --study at a study.jsonl written by graft tune.`);
  if (head.format > STUDY_FORMAT) throw new Error(`${file} was written by a newer graft (study format ${head.format}); upgrade graft to read it.`);
  const trials = new Map<number, TrialRecord>();
  const interruptions = new Map<number, number>();
  let sessions = 0;
  for (const ev of events.slice(1)) {
    if (ev.type === 'session') sessions++;
    if (ev.type === 'interrupted') interruptions.set(ev.trial, (interruptions.get(ev.trial) ?? 0) + 1);
    applyEvent(trials, ev);
  }
  return { identity: head.identity, created: head.created, settings: head.settings, trials, interruptions, sessions };
}
