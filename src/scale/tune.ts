/**
 * Distributed tuning (the coordinator's side). The study loop of `graft tune` stays in one process, the
 * coordinator: it owns the sampler, the pruner and the append-only study log exactly as a local run does
 * (src/tune/study.ts); only the executor differs. {@link QueueExecutor} puts each trial on the `tune` queue as a
 * BullMQ job, and `graft worker`s (src/scale/worker.ts) run it with the local tune's trial runner. A worker
 * reports each rung in the job's progress and waits; the coordinator records it in the log, asks the pruner, and
 * writes the decision to Redis under (job, rung).
 *
 * Nothing is counted twice: a job is keyed by (coordinator session, trial, attempt), a report by its rung, and a
 * trial's end is taken once. A job that runs twice (a worker killed -9 and the job taken back, a stalled lock)
 * reports rungs already decided: the coordinator answers them from its record and logs nothing new. A job that
 * vanished from Redis (restarted without its data) is put back and runs again from scratch.
 *
 * The coordinator polls its running jobs (every `pollMs`) rather than following the event stream: one code path
 * that survives lost connections and lost data alike, at a few Redis commands per running trial per poll.
 */
import { randomBytes } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { Queue } from 'bullmq';
import { studyFile, type TuneConfig } from '../tune/config.js';
import type { ObjectiveSpec } from '../tune/objective.js';
import type { Executor, ReportHandler } from '../tune/pool.js';
import { type RunTuneOptions, runTune } from '../tune/run.js';
import type { TrialJob, TrialOutcome } from '../tune/types.js';
import { checkReachable, QUEUE_PREFIX, redisConnection, TUNE_QUEUE, watchConnection } from './connection.js';
import { decisionKey, type RungReport, TRIAL_JOB, type TrialJobData } from './jobs.js';

/** Options of {@link QueueExecutor.open}. */
export interface QueueExecutorOptions {
  /** The Redis server, `redis://host:port`. */
  queue: string;
  /** The study log (for job data and messages). */
  study: string;
  /** The objective (a module path every worker sees). */
  spec: ObjectiveSpec;
  /** Trials at once (default: the workers connected to the tune queue now, at least 1). */
  slots?: number;
  /** onnxruntime threads per trial (default: each worker's own). */
  threads?: number;
  /** How often running jobs are checked, in ms (default 50). */
  pollMs?: number;
  /** Tries of a trial job that fails on the queue (not a trial that fails: that is a result) (default 3). */
  attempts?: number;
  /** How long a worker waits for a decision on a rung before it gives the trial up, in ms (default 5 min). */
  decisionTimeoutMs?: number;
  /** Warnings and connection notes (default console.warn). */
  onWarning?: (message: string) => void;
}

interface Pending {
  /** (session, trial, attempt): the trial's key here. */
  id: string;
  /** The job on the queue now: `id`, then `id.r<n>` when it had to be queued again after Redis lost it. */
  jobId: string;
  incarnation: number;
  job: TrialJob;
  onReport: ReportHandler;
  resolve: (o: TrialOutcome) => void;
  /** Decisions taken, by rung: a rung reported again gets the same answer and is not logged again. */
  decided: Map<number, boolean>;
  /** Rungs whose decision is in Redis for the job as it is there now. */
  written: Set<number>;
  added: boolean;
}

/** Runs trials as jobs on the `tune` queue; the study loop (runStudy) drives it like a local worker pool. */
export class QueueExecutor implements Executor {
  readonly slots: number;
  readonly where: string;
  private readonly pending = new Map<string, Pending>();
  private readonly session = randomBytes(4).toString('hex');
  private looping = false;
  private closed = false;
  private readonly warned = new Set<string>();

  private constructor(
    private readonly o: QueueExecutorOptions,
    private readonly queue: Queue,
    workers: number,
    private readonly watch: { stop(): void },
  ) {
    this.slots = o.slots ?? Math.max(1, workers);
    this.where = `${this.slots} trial${this.slots === 1 ? '' : 's'} at once on the queue ${o.queue} (${workers} worker${workers === 1 ? '' : 's'} connected now)`;
  }

  /**
   * Connects to the queue.
   * @throws when Redis cannot be reached.
   */
  static async open(o: QueueExecutorOptions): Promise<QueueExecutor> {
    await checkReachable(o.queue);
    const queue = new Queue(TUNE_QUEUE, { connection: redisConnection(o.queue), prefix: QUEUE_PREFIX });
    queue.on('error', () => {}); // connection errors: said once by watchConnection; ioredis reconnects
    const say = o.onWarning ?? console.warn;
    const watch = watchConnection(await queue.backend.client, o.queue, 'graft tune (coordinator)', say);
    const workers = (await queue.getWorkers()).length;
    if (workers === 0 && o.slots === undefined)
      say(`no graft worker is connected to ${o.queue} yet: the trials wait on the queue until one starts (graft worker --queue ${o.queue}).`);
    return new QueueExecutor(o, queue, workers, watch);
  }

  run(job: TrialJob, onReport: ReportHandler): Promise<TrialOutcome> {
    if (this.closed) return Promise.resolve({ state: 'failed', error: 'the queue executor is closed' });
    // BullMQ job ids may not contain ':'
    const id = `${this.session}.${job.id}.${job.attempt}`;
    return new Promise<TrialOutcome>((resolve) => {
      this.pending.set(id, { id, jobId: id, incarnation: 0, job, onReport, resolve, decided: new Map(), written: new Set(), added: false });
      if (!this.looping) {
        this.looping = true;
        void this.loop();
      }
    });
  }

  private warn(message: string): void {
    if (this.warned.has(message)) return;
    this.warned.add(message);
    (this.o.onWarning ?? console.warn)(message);
  }

  private async loop(): Promise<void> {
    for (;;) {
      // checked and cleared in one synchronous step: run() starts a new loop exactly when this one has ended
      if (this.closed || this.pending.size === 0) {
        this.looping = false;
        return;
      }
      for (const p of [...this.pending.values()]) {
        try {
          await this.check(p);
        } catch (e) {
          this.warn(`graft tune (coordinator): checking trial ${p.job.id} on ${this.o.queue} failed (${(e as Error).message}); trying again.`);
        }
      }
      await sleep(this.o.pollMs ?? 50);
    }
  }

  private async add(p: Pending): Promise<void> {
    const data: TrialJobData = {
      study: this.o.study,
      spec: this.o.spec,
      job: p.job,
      threads: this.o.threads,
      decisionTimeoutMs: this.o.decisionTimeoutMs ?? 300_000,
    };
    // a new id for a job queued again: a run of the lost one still going somewhere cannot touch it (its next
    // report finds no job and gives up), and what the lost one left behind cannot pass for its result
    const jobId = p.added ? `${p.id}.r${++p.incarnation}` : p.id;
    await this.queue.add(TRIAL_JOB, data, {
      jobId,
      attempts: this.o.attempts ?? 3,
      backoff: { type: 'exponential', delay: 500 },
      removeOnComplete: { age: 24 * 3600 },
      removeOnFail: { age: 7 * 24 * 3600 },
    });
    p.jobId = jobId;
    p.added = true;
    p.written.clear();
  }

  private finish(p: Pending, outcome: TrialOutcome): void {
    if (!this.pending.delete(p.id)) return;
    p.resolve(outcome);
  }

  private async check(p: Pending): Promise<void> {
    if (!p.added) return this.add(p);
    // the state first, then the job: read the other way round, a job that completes in between has no result yet
    const state = await this.queue.getJobState(p.jobId);
    const job = state === 'unknown' ? undefined : await this.queue.getJob(p.jobId);
    if (!job) {
      this.warn(
        `graft tune (coordinator): trial ${p.job.id}'s job ${p.jobId} is no longer in Redis (was it restarted without its data?); queued it again. Its rungs already in the study are not recorded twice.`,
      );
      return this.add(p);
    }
    if (state === 'completed') return this.finish(p, outcomeOf(job.returnvalue, p.jobId));
    if (state === 'failed')
      return this.finish(p, {
        state: 'failed',
        error: `the trial's job ${p.jobId} failed on the queue after ${job.attemptsMade} attempt${job.attemptsMade === 1 ? '' : 's'}: ${job.failedReason}`,
      });
    const r = job.progress as Partial<RungReport> | number;
    if (typeof r !== 'object' || r === null || typeof r.step !== 'number' || typeof r.value !== 'number') return;
    let prune = p.decided.get(r.step);
    if (prune === undefined) {
      prune = await p.onReport(r.step, r.value);
      p.decided.set(r.step, prune);
    }
    if (!p.written.has(r.step)) {
      const client = await this.queue.backend.client;
      await client.set(decisionKey(p.jobId, r.step), prune ? '1' : '0', { EX: 24 * 3600 });
      p.written.add(r.step);
    }
  }

  /** Stops checking, takes the trials that no worker started off the queue, and disconnects. */
  async close(): Promise<void> {
    this.closed = true;
    for (const p of this.pending.values()) {
      try {
        const job = await this.queue.getJob(p.jobId);
        if (job && ['waiting', 'delayed', 'prioritized'].includes(await job.getState())) await job.remove();
      } catch {
        // a running job cannot be removed: its worker gives it up when no decision comes (decisionTimeoutMs)
      }
      p.resolve({ state: 'failed', error: 'the study stopped before this trial finished' });
    }
    this.pending.clear();
    this.watch.stop();
    await this.queue.close();
  }
}

/** A worker's result as a trial outcome (anything else is a failed trial that says so). */
function outcomeOf(v: unknown, id: string): TrialOutcome {
  const o = v as Partial<TrialOutcome> | undefined;
  if (o?.state === 'complete' && typeof o.value === 'number') return { state: 'complete', value: o.value };
  if (o?.state === 'pruned') return { state: 'pruned', value: o.value, step: o.step };
  if (o?.state === 'failed') return { state: 'failed', error: String(o.error) };
  return { state: 'failed', error: `the trial's job ${id} returned ${JSON.stringify(v)}, not a trial outcome; is every worker running the same graft?` };
}

/** Options of {@link distributedTune}: {@link RunTuneOptions} plus the queue. */
export interface DistributedTuneOptions extends Omit<RunTuneOptions, 'executor'> {
  /** The Redis server, `redis://host:port`. */
  queue: string;
  /** Passed to the {@link QueueExecutor}. */
  pollMs?: number;
  decisionTimeoutMs?: number;
  attempts?: number;
}

/**
 * `graft tune --queue`: runs (or resumes) a study of a tune config with its trials on the queue's workers. This
 * process is the coordinator (sampler, pruner, study log); `study.workers`, when set, is the trials at once,
 * else the workers connected when the study starts. With one trial at once the study equals a local run with one
 * worker: same parameters, same values, same pruning.
 */
export async function distributedTune(cfg: TuneConfig, opts: DistributedTuneOptions): Promise<Awaited<ReturnType<typeof runTune>>> {
  redisConnection(opts.queue);
  await checkReachable(opts.queue);
  return runTune(cfg, {
    ...opts,
    executor: (spec) =>
      QueueExecutor.open({
        queue: opts.queue,
        study: studyFile(cfg),
        spec,
        slots: cfg.study.workers || undefined,
        threads: cfg.study.threadsPerWorker,
        pollMs: opts.pollMs,
        attempts: opts.attempts,
        decisionTimeoutMs: opts.decisionTimeoutMs,
        onWarning: opts.io?.warn,
      }),
  });
}
