/**
 * The worker's side of distributed tuning: runs a `tune` queue job with the local tune's trial runner (a
 * {@link WorkerPool} process per objective, src/tune/worker.ts: the same objective loading, reporting and pruning
 * as `graft tune` without a queue), so the trial also runs off this process's event loop and BullMQ keeps renewing
 * the job's lock. Each rung goes to the coordinator in the job's progress; the decision comes back from Redis under
 * (job, rung) (see src/scale/tune.ts).
 */
import fs from 'node:fs';
import os from 'node:os';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { type Job, UnrecoverableError } from 'bullmq';
import type { ObjectiveSpec } from '../tune/objective.js';
import { WorkerPool } from '../tune/pool.js';
import type { TrialOutcome } from '../tune/types.js';
import { decisionKey, type RungReport, type TrialJobData } from './jobs.js';

/** The Redis commands the decision wait needs (an ioredis client). */
export interface DecisionClient {
  get(key: string): Promise<string | null>;
}

/** Options of {@link trialRunner}. */
export interface TrialRunnerOptions {
  /** Trials at once on this worker (one trial process each). */
  concurrency: number;
  /** onnxruntime threads per trial when the job does not say (default: cores / concurrency). */
  threads?: number;
  /** How often the decision key is read while a rung waits, in ms (default 20). */
  pollMs?: number;
}

/**
 * The objective as this machine sees it: graft's built-in objective is named by its path in the coordinator's
 * install, which need not be this machine's, so a missing built-in module means this install's own.
 */
export function localSpec(spec: ObjectiveSpec): ObjectiveSpec {
  const builtin = /[\\/]tune[\\/]graft-objective\.(ts|js)$/.exec(spec.module);
  if (!builtin || fs.existsSync(spec.module)) return spec;
  const own = fileURLToPath(new URL(`../tune/graft-objective.${import.meta.url.endsWith('.ts') ? 'ts' : 'js'}`, import.meta.url));
  return { ...spec, module: own };
}

/**
 * Waits for the coordinator's decision on a rung. Only time with a working connection counts toward the timeout,
 * so a Redis outage does not make a worker give up on a coordinator that is still there.
 * @throws an UnrecoverableError (no retry) when no decision comes in `timeoutMs`: the coordinator is gone, and a
 * resumed study re-runs the trial as a new job.
 */
export async function waitDecision(
  client: DecisionClient,
  key: string,
  timeoutMs: number,
  pollMs = 20,
  stillThere: () => Promise<boolean> = async () => true,
): Promise<boolean> {
  let waited = 0;
  let last = Date.now();
  for (let i = 1; ; i++) {
    const v = await client.get(key);
    if (v !== null) return v === '1';
    // about once a second: a job that Redis lost (restarted empty) is queued again under a new id by the coordinator
    if (i % Math.max(1, Math.round(1000 / pollMs)) === 0 && !(await stillThere()))
      throw new Error(`its job is no longer in Redis (restarted without its data?); the coordinator has queued the trial again`);
    const now = Date.now();
    waited += Math.min(now - last, 4 * pollMs + 100);
    last = now;
    if (waited > timeoutMs)
      throw new UnrecoverableError(
        `no decision from the study's coordinator on ${key} in ${Math.round(timeoutMs / 1000)} s: the coordinator (graft tune --queue) is gone; its study re-runs this trial when resumed with --resume.`,
      );
    await sleep(pollMs);
  }
}

/** A processor for `tune` jobs, and the trial processes it keeps (one pool per objective), to close with the worker. */
export function trialRunner(o: TrialRunnerOptions): {
  run(job: Job<TrialJobData>, client: DecisionClient): Promise<TrialOutcome>;
  close(): Promise<void>;
} {
  const pools = new Map<string, WorkerPool>();
  const cores = os.availableParallelism?.() ?? os.cpus().length;
  return {
    async run(job, client) {
      const d = job.data;
      const spec = localSpec(d.spec);
      const threads = d.threads ?? o.threads ?? Math.max(1, Math.floor(cores / o.concurrency));
      const key = JSON.stringify([spec, threads]);
      let pool = pools.get(key);
      if (!pool) {
        pool = new WorkerPool({ workers: o.concurrency, threads, objective: spec });
        pools.set(key, pool);
      }
      let lost: Error | undefined;
      const outcome = await pool.run(d.job, async (step, value) => {
        try {
          await job.updateProgress({ step, value } satisfies RungReport);
          return await waitDecision(client, decisionKey(job.id!, step), d.decisionTimeoutMs, o.pollMs, async () => (await job.getState()) !== 'unknown');
        } catch (e) {
          lost ??= e as Error;
          throw e;
        }
      });
      // the trial could not talk to its coordinator: a queue failure (retried, or final when the coordinator is gone), not a trial result
      if (lost) {
        if (lost instanceof UnrecoverableError) throw lost;
        throw new Error(`trial ${d.job.id} of ${d.study} lost its coordinator's connection: ${lost.message}`);
      }
      return outcome;
    },
    async close() {
      await Promise.all([...pools.values()].map((p) => p.close()));
      pools.clear();
    },
  };
}
