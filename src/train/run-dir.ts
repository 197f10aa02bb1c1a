/**
 * The run folder of `graft train`: runs/<name>/ holds config.json, metrics.jsonl (one line per epoch),
 * checkpoints/<phase>/{last,best,early-best,final}.ckpt and, at the end, model.onnx + model.json.
 *
 * Resuming is exact: each phase resumes from its last.ckpt (fit replays the same batches, augmentations
 * and dropout masks), a finished phase is restored from its final.ckpt instead of being re-run, the best
 * weights kept for early stopping survive in early-best.ckpt, and metrics.jsonl is cut back to the epochs
 * the checkpoints hold, so the log equals an uninterrupted run's.
 */
import fs from 'node:fs';
import path from 'node:path';
import type { Model } from '../ir/model.js';
import { loadCheckpoint, saveCheckpoint } from '../step/checkpoint.js';
import type { Tensor } from '../tensor.js';
import { atomicWrite, removeOrphanTemps } from '../util/atomic-write.js';
import { appendJsonl, toJsonLine } from '../util/jsonl.js';
import { acquirePidLock } from '../util/pid-lock.js';
import { type Callback, EarlyStopping, type EpochMetrics, type TrainState } from './callbacks.js';

/** What a finished phase left behind (its final.ckpt). */
export interface FinishedPhase {
  history: EpochMetrics[];
  stoppedEarly: boolean;
  tensors: Map<string, Tensor>;
}

/** Config keys that may change between a run and its resumption (they do not change the numbers). */
const RESUME_NEUTRAL = [
  'source',
  'run.name',
  'run.dir',
  'run.resume',
  'run.overwrite',
  'run.threads',
  'run.device',
  'run.checkpointEvery',
  'run.keepCheckpoints',
  'run.strict',
  'run.export',
  'lrFind',
];

/** The checkpoints a phase needs only while it runs (resume point, best state, early stopping's best weights). */
const IN_PHASE_CHECKPOINTS = ['last.ckpt', 'best.ckpt', 'early-best.ckpt'];

/** A run folder. */
export class RunDir {
  readonly metricsFile: string;
  readonly configFile: string;

  /** Keep a finished phase's in-phase checkpoints (config `run.keepCheckpoints`); see {@link RunDir.savePhase}. */
  private keepCheckpoints = false;

  /** Releases the run folder's lock (see {@link RunDir.open}); safe to call twice. */
  release: () => void = () => {};

  private constructor(readonly root: string) {
    this.metricsFile = path.join(root, 'metrics.jsonl');
    this.configFile = path.join(root, 'config.json');
  }

  /**
   * Opens `root` for a new run, or for resuming one.
   * - new run: the folder must not hold a run unless `overwrite` (then it is emptied);
   * - resume: the stored config.json must equal `config` apart from resume-neutral keys (threads, checkpointEvery, …);
   *   a missing folder starts a fresh run.
   * Writes config.json.
   *
   * The folder is locked first (`.<name>.lock` beside it, holding the pid) so a second process cannot resume or
   * overwrite a run that is still going; a lock left by a killed process is taken over (`onNote` says so). Then
   * the temp files of writes cut short by a kill are removed. Call {@link RunDir.release} when the run ends.
   * @throws naming the folder and the differing keys, and how to proceed; or the pid of the process running it.
   */
  static open(root: string, opts: { resume: boolean; overwrite: boolean; config: Record<string, unknown>; onNote?: (m: string) => void }): RunDir {
    const rd = new RunDir(path.resolve(root));
    rd.keepCheckpoints = (opts.config.run as { keepCheckpoints?: boolean } | undefined)?.keepCheckpoints === true;
    const lock = acquirePidLock(path.join(path.dirname(rd.root), `.${path.basename(rd.root)}.lock`), {
      what: `the run folder ${rd.root}`,
      command: 'graft train',
      retry: 'try again (with --resume to continue it)',
      onStale: (pid) => opts.onNote?.(`taking over the lock of ${rd.root} left by process ${pid}, which is no longer running`),
    });
    rd.release = lock.release;
    try {
      rd.prepare(opts);
    } catch (e) {
      rd.release();
      throw e;
    }
    return rd;
  }

  private prepare(opts: { resume: boolean; overwrite: boolean; config: Record<string, unknown>; onNote?: (m: string) => void }): void {
    const orphans = removeOrphanTemps(this.root);
    if (orphans.length) opts.onNote?.(`removed ${orphans.length} temp file(s) left in ${this.root} by a killed run`);
    const exists = fs.existsSync(this.configFile);
    if (exists && opts.resume) {
      let old: Record<string, unknown>;
      try {
        old = JSON.parse(fs.readFileSync(this.configFile, 'utf8'));
      } catch (e) {
        throw new Error(`Cannot read ${this.configFile} (${(e as Error).message}); the run folder is damaged. Start again with --overwrite.`);
      }
      const diff = diffKeys(stripNeutral(old), stripNeutral(opts.config));
      if (diff.length)
        throw new Error(
          `Cannot resume ${this.root}: its config differs in ${diff.slice(0, 8).join(', ')}${diff.length > 8 ? ', …' : ''}. ` +
            'Resume with the same config and flags, or start a new run (another --name, or --overwrite).',
        );
    } else if (exists) {
      if (!opts.overwrite)
        throw new Error(`Run folder ${this.root} already holds a run. Continue it with --resume, replace it with --overwrite, or choose another --name.`);
      fs.rmSync(this.root, { recursive: true, force: true });
    } else if (fs.existsSync(this.root) && fs.readdirSync(this.root).length > 0) {
      throw new Error(`${this.root} is not empty and holds no graft run (no config.json). Choose another --name or --runs-dir, or empty that folder.`);
    }
    atomicWrite(this.configFile, `${JSON.stringify(opts.config, null, 2)}\n`);
  }

  /** Checkpoint folder of a training phase. */
  phaseDir(phase: string): string {
    return path.join(this.root, 'checkpoints', phase);
  }

  /** The final state of a phase that already finished, if any. */
  finishedPhase(phase: string): FinishedPhase | undefined {
    const f = path.join(this.phaseDir(phase), 'final.ckpt');
    if (!fs.existsSync(f)) return undefined;
    const ck = loadCheckpoint(f);
    const m = ck.meta as unknown as { history: EpochMetrics[]; stoppedEarly: boolean };
    return { history: m.history, stoppedEarly: m.stoppedEarly, tensors: ck.tensors };
  }

  /**
   * Records that a phase finished, with the given parameter/statistic values of `model`, in its final.ckpt; then,
   * unless `run.keepCheckpoints` or the last epoch's metrics are not finite, deletes the phase's last.ckpt, best.ckpt
   * and early-best.ckpt: a finished phase is only ever restored from final.ckpt, so a finished run keeps one
   * checkpoint per phase (the weights that phase trained) instead of four, two of them with optimizer state.
   * final.ckpt is written atomically first, so a kill at any point leaves a folder that resumes: before it, the
   * phase resumes from last.ckpt; after it, it is done.
   */
  savePhase(phase: string, model: Model, names: Iterable<string>, r: { history: EpochMetrics[]; stoppedEarly: boolean; steps: number }): void {
    const tensors = new Map<string, Tensor>();
    for (const n of names) {
      const t = model.graph.initializers.get(n);
      if (t) tensors.set(n, t);
    }
    saveCheckpoint(path.join(this.phaseDir(phase), 'final.ckpt'), { meta: { step: r.steps, history: r.history, stoppedEarly: r.stoppedEarly }, tensors });
    // a phase whose last epoch is not finite keeps them: its best.ckpt may be the run's last good checkpoint
    if (!this.keepCheckpoints && finiteEpoch(r.history.at(-1)))
      for (const f of IN_PHASE_CHECKPOINTS) fs.rmSync(path.join(this.phaseDir(phase), f), { force: true });
  }

  /** Epochs of a phase held by its checkpoints (final.ckpt, else last.ckpt), 0 when none. */
  completedEpochs(phase: string): number {
    const fin = this.finishedPhase(phase);
    if (fin) return fin.history.length;
    const last = path.join(this.phaseDir(phase), 'last.ckpt');
    if (!fs.existsSync(last)) return 0;
    const h = (loadCheckpoint(last).meta as { history?: unknown[] }).history;
    return h?.length ?? 0;
  }

  /**
   * The result of a phase that early stopping had ended when the run was killed (see {@link AlreadyStopped}):
   * the weights of its last.ckpt, or of early-best.ckpt with `restoreBest`, and its history.
   */
  stoppedPhase(phase: string, restoreBest: boolean): FinishedPhase & { steps: number } {
    const dir = this.phaseDir(phase);
    const last = loadCheckpoint(path.join(dir, 'last.ckpt'));
    const tensors = new Map(last.tensors);
    const best = path.join(dir, 'early-best.ckpt');
    if (restoreBest && fs.existsSync(best)) for (const [k, v] of loadCheckpoint(best).tensors) tensors.set(k, v);
    const m = last.meta as unknown as { history: EpochMetrics[]; step: number };
    return { history: m.history, stoppedEarly: true, tensors, steps: m.step };
  }

  /**
   * A sentence naming the newest checkpoint (of `phases`, latest phase first) that exists, can be read, and whose
   * last recorded epoch has finite metrics; or, when there is none, what to do instead.
   */
  lastGoodCheckpoint(phases: string[]): string {
    for (const phase of [...phases].reverse()) {
      let good: { file: string; m: EpochMetrics } | undefined;
      for (const name of ['final.ckpt', 'last.ckpt', 'best.ckpt']) {
        const file = path.join(this.phaseDir(phase), name);
        if (!fs.existsSync(file)) continue;
        let m: EpochMetrics | undefined;
        try {
          m = (loadCheckpoint(file).meta as { history?: EpochMetrics[] }).history?.at(-1);
        } catch {
          continue; // damaged: not a good one
        }
        if (m && finiteEpoch(m) && (!good || m.epoch > good.m.epoch)) good = { file, m };
      }
      if (good) {
        const vals = Object.entries(good.m)
          .filter(([k]) => k !== 'epoch' && k !== 'step')
          .map(([k, v]) => `${k} ${typeof v === 'number' ? v.toFixed(4) : v}`);
        return `The last good checkpoint is ${good.file} (${phase} epoch ${good.m.epoch}: ${vals.join(', ')}).`;
      }
    }
    return 'No checkpoint of this run has finite metrics; lower the learning rate (--lr) or clip gradients (--clip-norm) and start again with --overwrite.';
  }

  /**
   * Cuts metrics.jsonl back to the epochs the checkpoints hold (`completed` = phase → epochs): lines of later
   * epochs, of phases not started, and a torn last line are dropped. Returns the number of lines kept.
   */
  truncateMetrics(completed: Record<string, number>): number {
    if (!fs.existsSync(this.metricsFile)) return 0;
    const keep: string[] = [];
    for (const line of fs.readFileSync(this.metricsFile, 'utf8').split('\n')) {
      if (!line.trim()) continue;
      let o: { phase?: string; epoch?: number };
      try {
        o = JSON.parse(line);
      } catch {
        continue; // torn by a kill
      }
      if (o.phase !== undefined && o.epoch !== undefined && o.epoch <= (completed[o.phase] ?? 0)) keep.push(line);
    }
    atomicWrite(this.metricsFile, keep.length ? `${keep.join('\n')}\n` : '');
    return keep.length;
  }

  /** Writes a JSON file in the run folder atomically. */
  writeJson(name: string, value: unknown): string {
    const f = path.join(this.root, name);
    atomicWrite(f, `${JSON.stringify(value, null, 2)}\n`);
    return f;
  }

  /** Writes a JSON Lines file in the run folder atomically. */
  writeJsonl(name: string, rows: unknown[]): string {
    const f = path.join(this.root, name);
    atomicWrite(f, rows.map((r) => `${toJsonLine(r)}\n`).join(''));
    return f;
  }
}

/** Appends one metrics.jsonl line per epoch: phase, epoch, step, lr (of the head group), train/val metrics. */
export class MetricsLog implements Callback {
  readonly name = 'metrics-log';
  private lr: number | undefined;
  constructor(
    private readonly file: string,
    private readonly phase: string,
  ) {}
  onStepEnd(_s: TrainState, r: { lr: number }): void {
    this.lr = r.lr;
  }
  onEpochEnd(_s: TrainState, m: EpochMetrics): void {
    const { epoch, step, ...rest } = m;
    appendJsonl(this.file, { phase: this.phase, epoch, step, lr: this.lr, ...rest });
  }
}

/** Thrown at the start of a resumed fit whose checkpoint shows that early stopping had already ended it. */
export class AlreadyStopped extends Error {
  constructor() {
    super('The resumed phase had already stopped early; its state comes from its checkpoints.');
  }
}

/**
 * EarlyStopping whose best weights survive a kill: they are written to `file` whenever they improve and read
 * back on resume (when they belong to the best epoch recorded in the resumed checkpoint). A run killed after
 * early stopping ended a phase but before the phase was recorded as finished must not train another epoch:
 * resuming it throws {@link AlreadyStopped} from onTrainBegin, and {@link RunDir.stoppedPhase} rebuilds the result.
 */
export class PersistentEarlyStopping extends EarlyStopping {
  private resumedStopped = false;
  constructor(
    opts: ConstructorParameters<typeof EarlyStopping>[0],
    private readonly file: string,
  ) {
    super(opts);
  }
  onTrainBegin(): void {
    if (this.resumedStopped) throw new AlreadyStopped();
  }
  override onEpochEnd(s: TrainState, m: EpochMetrics): void {
    const before = this.bestEpochIndex;
    super.onEpochEnd(s, m);
    const best = this.bestParams;
    if (this.bestEpochIndex !== before && best) saveCheckpoint(this.file, { meta: { step: s.step, bestEpoch: this.bestEpochIndex }, tensors: best });
  }
  override loadState(st: unknown): void {
    super.loadState(st);
    this.resumedStopped = ((st as { wait?: number }).wait ?? 0) >= (this.opts.patience ?? 3);
    if (!fs.existsSync(this.file)) return;
    const ck = loadCheckpoint(this.file);
    if ((ck.meta as { bestEpoch?: number }).bestEpoch === this.bestEpochIndex) this.setBestParams(ck.tensors);
  }
}

/** True when every metric of the epoch is a finite number (NaN and Infinity are stored as null in a checkpoint's JSON header). */
function finiteEpoch(m: EpochMetrics | undefined): boolean {
  return !!m && Object.values(m).every((v) => v !== null && (typeof v !== 'number' || Number.isFinite(v)));
}

export function stripNeutral(c: Record<string, unknown>): Record<string, unknown> {
  const copy = JSON.parse(JSON.stringify(c)) as Record<string, unknown>;
  for (const k of RESUME_NEUTRAL) {
    const [a, b] = k.split('.') as [string, string | undefined];
    const o = copy[a] as Record<string, unknown> | undefined;
    if (b === undefined) delete copy[a];
    else if (o) delete o[b];
  }
  return copy;
}

/** Dotted keys whose values differ between two JSON objects. */
export function diffKeys(a: unknown, b: unknown, prefix = ''): string[] {
  const isObj = (v: unknown): v is Record<string, unknown> => !!v && typeof v === 'object' && !Array.isArray(v);
  if (isObj(a) && isObj(b)) {
    const out: string[] = [];
    for (const k of new Set([...Object.keys(a), ...Object.keys(b)])) out.push(...diffKeys(a[k], b[k], prefix ? `${prefix}.${k}` : k));
    return out;
  }
  return JSON.stringify(a) === JSON.stringify(b) ? [] : [prefix || '(config)'];
}
