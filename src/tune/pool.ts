/**
 * Executors run trials. {@link WorkerPool} runs them in parallel in worker processes (child_process.fork),
 * each with its own onnxruntime thread budget (GRAFT_THREADS), so `workers × threads` matches the cores
 * instead of oversubscribing them; a worker that dies (a native crash, out of memory, kill -9) fails only
 * the trial it was running and is replaced. {@link InProcessExecutor} runs trials one at a time in this
 * process (tests, debugging, `study.workers: 0`).
 */
import { type ChildProcess, fork } from 'node:child_process';
import { createRequire } from 'node:module';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { errorText, isPruned, loadObjective, type Objective, type ObjectiveSpec } from './objective.js';
import type { TrialJob, TrialOutcome } from './types.js';
import type { FromWorker, ToWorker } from './worker.js';

/**
 * Called with each intermediate report; returns (or resolves to) true when the trial should stop (pruned).
 * A distributed worker's handler is asynchronous: the decision comes from the study's coordinator over the queue.
 */
export type ReportHandler = (step: number, value: number) => boolean | Promise<boolean>;

/** Runs trials; at most `slots` at once. */
export interface Executor {
  readonly slots: number;
  /** Where the trials run, for the study's opening note (default: the local worker processes). */
  readonly where?: string;
  run(job: TrialJob, onReport: ReportHandler): Promise<TrialOutcome>;
  close(): Promise<void>;
}

/** Runs trials sequentially in this process. */
export class InProcessExecutor implements Executor {
  readonly slots = 1;
  private objective?: Promise<Objective>;
  constructor(
    private readonly source: ObjectiveSpec | Objective,
    private readonly threads = 1,
  ) {}

  async run(job: TrialJob, onReport: ReportHandler): Promise<TrialOutcome> {
    let last: { step: number; value: number } | undefined;
    try {
      this.objective ??= typeof this.source === 'function' ? Promise.resolve(this.source) : loadObjective(this.source);
      const value = await (await this.objective)(job.params, {
        trial: job.id,
        attempt: job.attempt,
        threads: this.threads,
        report: async (step, value) => {
          last = { step, value };
          return onReport(step, value);
        },
      });
      if (typeof value !== 'number' || !Number.isFinite(value))
        return { state: 'failed', error: `the objective returned ${String(value)} instead of a finite number` };
      return { state: 'complete', value };
    } catch (e) {
      if (isPruned(e)) return { state: 'pruned', value: (e as { value?: number }).value ?? last?.value, step: (e as { step?: number }).step ?? last?.step };
      return { state: 'failed', error: errorText(e) };
    }
  }

  async close(): Promise<void> {}
}

/** Options of {@link WorkerPool}. */
export interface WorkerPoolOptions {
  /** Worker processes (trials in parallel). */
  workers: number;
  /** onnxruntime intra-op threads per worker. */
  threads: number;
  objective: ObjectiveSpec;
  /** Extra environment variables of the workers. */
  env?: Record<string, string>;
}

interface Slot {
  child: ChildProcess;
  busy: boolean;
  /** Last output of the worker's stderr (quoted when it dies). */
  stderr: string;
  finish?: (o: TrialOutcome) => void;
  onReport?: ReportHandler;
  trial?: number;
}

/** The worker entry beside this file (worker.ts under tsx, worker.js when compiled). */
function workerEntry(): string {
  const here = fileURLToPath(import.meta.url);
  return here.replace(/pool\.(ts|js)$/, 'worker.$1');
}

/** Node flags that take their value as the next argument and are worth passing on (loaders, conditions). */
const KEEP_WITH_VALUE = new Set(['--import', '--require', '-r', '--loader', '--experimental-loader', '--conditions', '-C']);

/** Node flags for a worker: our loaders and runtime options (not test-runner, inspector or watch flags), plus the tsx loader when a .ts file must run. */
export function workerExecArgv(needsTs: boolean, execArgv = process.execArgv): string[] {
  const argv: string[] = [];
  for (let i = 0; i < execArgv.length; i++) {
    const a = execArgv[i]!;
    if (KEEP_WITH_VALUE.has(a) && i + 1 < execArgv.length) argv.push(a, execArgv[++i]!);
    else if (/^--(import|require|loader|experimental-loader|conditions)=/.test(a) || /^--(no-|experimental-|enable-|max-|stack-size)/.test(a)) argv.push(a);
  }
  if (needsTs && !argv.some((a) => a.includes('tsx'))) {
    try {
      argv.push('--import', pathToFileURL(createRequire(import.meta.url).resolve('tsx')).href);
    } catch {
      throw new Error(
        'graft tune needs tsx to run TypeScript trial workers or objective modules. Run `npm install`, or build graft (`npm run build`) and use a .js objective.',
      );
    }
  }
  return argv;
}

/** A pool of trial worker processes. */
export class WorkerPool implements Executor {
  readonly slots: number;
  private readonly pool: Slot[] = [];
  private closed = false;

  constructor(private readonly o: WorkerPoolOptions) {
    if (!(o.workers >= 1)) throw new Error(`study.workers must be ≥ 1 for a worker pool, got ${o.workers}.`);
    this.slots = o.workers;
  }

  /** Process ids of the live workers (tests kill one to simulate a crash). */
  get pids(): number[] {
    return this.pool.filter((s) => s.child.exitCode === null && s.child.signalCode === null).map((s) => s.child.pid!);
  }

  private spawn(): Slot {
    const entry = workerEntry();
    const child = fork(entry, [], {
      execArgv: workerExecArgv(entry.endsWith('.ts') || this.o.objective.module.endsWith('.ts')),
      env: { ...process.env, ...this.o.env, GRAFT_THREADS: String(this.o.threads), OMP_NUM_THREADS: String(this.o.threads) },
      stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
      serialization: 'advanced',
    });
    const slot: Slot = { child, busy: false, stderr: '' };
    const keep = (d: Buffer) => {
      slot.stderr = (slot.stderr + d.toString()).slice(-2000);
      if (process.env.GRAFT_DEBUG === '1') process.stderr.write(d);
    };
    child.stdout!.on('data', keep);
    child.stderr!.on('data', keep);
    child.on('message', (m: FromWorker) => {
      if (m.type === 'report') {
        const decide = (prune: boolean) => {
          if (child.connected) child.send({ type: 'decision', trial: m.trial, seq: m.seq, prune } satisfies ToWorker);
        };
        let prune: boolean | Promise<boolean> = false;
        try {
          prune = slot.trial === m.trial && (slot.onReport?.(m.step, m.value) ?? false);
        } catch (e) {
          slot.finish?.({ state: 'failed', error: `the study could not record a report: ${errorText(e)}` });
        }
        if (typeof prune === 'boolean') decide(prune);
        else
          prune.then(decide, (e) => {
            // no decision will come: fail the trial and end its process (out of the pool first, so no trial is
            // given to it while it dies), so no half-run trial is left behind in it
            const i = this.pool.indexOf(slot);
            if (i >= 0) this.pool.splice(i, 1);
            slot.finish?.({ state: 'failed', error: `the study could not record a report: ${errorText(e)}` });
            child.kill('SIGKILL');
          });
      } else if (m.type === 'outcome' && slot.trial === m.trial) slot.finish?.(m.outcome);
    });
    const died = (why: string) => {
      const tail = slot.stderr.trim().split('\n').slice(-3).join(' | ');
      slot.finish?.({
        state: 'failed',
        error: `the worker process ${child.pid} ${why} while running trial ${slot.trial}${tail ? `; its last output: ${tail}` : ''}`,
      });
      const i = this.pool.indexOf(slot);
      if (i >= 0) this.pool.splice(i, 1);
    };
    child.on('exit', (code, signal) => died(signal ? `was killed by ${signal}` : `exited with code ${code}`));
    child.on('error', (e) => died(`failed (${e.message})`));
    child.send({ type: 'init', spec: this.o.objective, threads: this.o.threads } satisfies ToWorker);
    this.pool.push(slot);
    return slot;
  }

  run(job: TrialJob, onReport: ReportHandler): Promise<TrialOutcome> {
    if (this.closed) return Promise.resolve({ state: 'failed', error: 'the worker pool is closed' });
    const slot = this.pool.find((s) => !s.busy) ?? this.spawn();
    slot.busy = true;
    slot.trial = job.id;
    slot.onReport = onReport;
    return new Promise<TrialOutcome>((resolve) => {
      slot.finish = (o) => {
        slot.finish = undefined;
        slot.onReport = undefined;
        slot.busy = false;
        resolve(o);
      };
      try {
        slot.child.send({ type: 'run', job } satisfies ToWorker);
      } catch (e) {
        slot.finish({ state: 'failed', error: `could not send trial ${job.id} to worker process ${slot.child.pid}: ${(e as Error).message}` });
      }
    });
  }

  /** Stops every worker (politely, then SIGKILL after 3 s). */
  async close(): Promise<void> {
    this.closed = true;
    await Promise.all(
      this.pool.splice(0).map(
        (s) =>
          new Promise<void>((resolve) => {
            s.finish = undefined;
            if (s.child.exitCode !== null || s.child.signalCode !== null) return resolve();
            const timer = setTimeout(() => s.child.kill('SIGKILL'), 3000);
            s.child.once('exit', () => {
              clearTimeout(timer);
              resolve();
            });
            if (s.child.connected) s.child.disconnect();
            else s.child.kill('SIGTERM');
          }),
      ),
    );
  }
}
