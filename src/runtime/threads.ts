/**
 * The onnxruntime intra-op thread count of sessions whose options name none. Sessions take `threads`
 * explicitly (SessionOptions, StepRunner.create); this is only the default. It is, in order: the process default
 * set by {@link setDefaultThreads} (the CLI's --threads), then env GRAFT_THREADS (how a parent process, such as
 * tune's worker pool, hands a child its thread budget), then every core. This is the one place that reads it.
 */
import os from 'node:os';

let processDefault: number | undefined;

/** Sets (or, with undefined, clears) the thread count of sessions that name none; throws unless a positive integer. */
export function setDefaultThreads(threads: number | undefined): void {
  if (threads !== undefined && !(Number.isInteger(threads) && threads > 0))
    throw new Error(`threads must be a positive integer (e.g. --threads 4), got ${threads}.`);
  processDefault = threads;
}

/** The thread count of a session whose options name none (see the module comment for the order). */
export function defaultThreads(): number {
  if (processDefault) return processDefault;
  const env = Number(process.env.GRAFT_THREADS);
  return Number.isInteger(env) && env > 0 ? env : Math.max(1, os.availableParallelism?.() ?? os.cpus().length);
}
