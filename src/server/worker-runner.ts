/**
 * The batched runner of `graft serve`: a {@link DynamicBatcher} in front of a {@link WorkerPool}, so requests are
 * batched on the event loop and run off it. Implements the contract's {@link OpenRunner}.
 */
import { readFile } from 'node:fs/promises';
import { defaultThreads } from '../runtime/threads.js';
import { DynamicBatcher } from './batcher.js';
import type { HostTensor, ModelRunner, OpenRunner, RunnerOptions } from './contract.js';
import { allocate, runnerInfoOf } from './tensors.js';
import { WorkerPool } from './worker-pool.js';

/** {@link RunnerOptions} plus the batched runner's own. */
export interface BatchedRunnerOptions extends RunnerOptions {
  /** Worker threads, each with one session (default 1: one session with every thread suits a CPU server best). */
  workers?: number;
  /**
   * Run one batch of zeros at `maxBatchSize` in every worker before serving (default true), so the first full batch
   * of requests does not pay onnxruntime's first-run allocation. Skipped for a model with a dynamic non-batch dim.
   */
  warmup?: boolean;
}

/**
 * Opens the batched runner on an .onnx file: loads the model in `workers` worker threads (each with
 * `threads / workers` onnxruntime threads unless `threads` is given, which is then per worker), reads its inputs
 * and outputs, and batches requests onto the workers. `drain()` finishes the accepted requests, then stops them.
 * @throws naming the model when the file cannot be read or onnxruntime cannot load it, or when its inputs have no
 *   shared batch dim 0.
 */
export const openBatchedRunner = (async (file: string, opts: BatchedRunnerOptions): Promise<ModelRunner> => {
  const label = `model "${opts.model}" version ${opts.version}`;
  let bytes: Uint8Array;
  try {
    bytes = await readFile(file);
  } catch (e) {
    throw new Error(`Cannot read ${label} from ${file}: ${(e as Error).message}. Check the model repository path.`);
  }
  const workers = opts.workers ?? 1;
  const threads = opts.threads ?? Math.max(1, Math.floor(defaultThreads() / workers));
  const pool = new WorkerPool(bytes, { label, workers, threads });
  const io = await pool.open();
  let info: ReturnType<typeof runnerInfoOf>;
  try {
    info = runnerInfoOf(opts.model, io, opts.maxBatchSize);
  } catch (e) {
    await pool.close();
    throw e;
  }
  const rows = info.maxBatchSize;
  if ((opts.warmup ?? true) && info.inputs.every((t) => t.datatype !== 'BYTES' && t.shape.length > 0 && t.shape.slice(1).every((d) => d >= 0))) {
    try {
      await pool.warmUp(() => ({
        inputs: Object.fromEntries(
          info.inputs.map((t) => {
            const shape = [rows, ...t.shape.slice(1)];
            const datatype = t.datatype as HostTensor['datatype'];
            return [
              t.name,
              {
                datatype,
                shape,
                data: allocate(
                  datatype,
                  shape.reduce((a, b) => a * b, 1),
                ),
              },
            ];
          }),
        ),
        outputs: info.outputs.slice(0, 1).map((t) => t.name),
      }));
    } catch (e) {
      await pool.close();
      throw new Error(`${label} failed its warm-up run on a batch of ${rows} zeros: ${(e as Error).message}`);
    }
  }
  return new DynamicBatcher(info, pool, {
    model: opts.model,
    version: opts.version,
    concurrency: workers,
    ...(opts.maxQueueDelayMs !== undefined ? { maxQueueDelayMs: opts.maxQueueDelayMs } : {}),
    ...(opts.maxQueue !== undefined ? { maxQueue: opts.maxQueue } : {}),
    ...(opts.metrics ? { metrics: opts.metrics } : {}),
    ...(opts.padInputs ? { padInputs: opts.padInputs } : {}),
  });
}) satisfies OpenRunner;
