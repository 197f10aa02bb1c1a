/**
 * The dynamic batcher of one model version: requests queue, and whenever an executor slot is free the batcher
 * runs one session run over as many queued rows as the model takes, concatenated along dim 0, then splits the
 * outputs back to the requests. It waits at most `maxQueueDelayMs` after the oldest request arrived for a batch
 * to fill; while every slot is busy, requests simply accumulate (so under load batches fill without waiting).
 *
 * - **Batch size**: `info.maxBatchSize`: a model's fixed batch dim (partial batches are zero-padded to it, the
 *   padding rows' outputs dropped) or the cap for a dynamic one.
 * - **Padding**: requests batch together when their inputs' inner dims agree, except an input named in
 *   `padInputs` (token ids [n, T]): its T may differ, and each request's rows are right-padded to the batch's
 *   longest with the input's pad value.
 * - **Bounded queue**: one request more than `maxQueue` waiting is refused with {@link QueueFullError}, with a
 *   Retry-After estimated from the measured time per run.
 * - **Isolation**: a request is checked ({@link checkRequest}) before it joins the queue, so a malformed one fails
 *   alone; if a run of several requests still fails (say, an index out of range in one request's data), each is
 *   re-run on its own, so only the culprit fails, unless the executor says it is unavailable
 *   ({@link ExecutorUnavailableError}: a crashed worker), which fails the batch at once.
 *
 * Pure logic: the executor and the clock are injected, so it is unit-tested without onnxruntime or real time.
 */
import { type HostTensor, type ModelRunner, QueueFullError, type RunnerInfo, type ServeMetrics } from './contract.js';
import { allocate, checkRequest, hasFixedBatch, rowSize } from './tensors.js';

/** Runs one batch. It owns the input arrays it is given (it may transfer their buffers). */
export interface BatchExecutor {
  run(inputs: Record<string, HostTensor>, outputs: readonly string[]): Promise<Record<string, HostTensor>>;
  /** Releases the executor once the batcher has drained. */
  close?(): Promise<void>;
}

/**
 * An executor failure that is not about the batch's data (a crashed worker, a closed runner): the batch fails at
 * once instead of being re-run request by request. The HTTP layer answers it with 503.
 */
export class ExecutorUnavailableError extends Error {
  override name = 'ExecutorUnavailableError';
}

/** Time and timers, injectable for deterministic tests. `now` is in ms. */
export interface Clock {
  now(): number;
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

/** The real clock: `performance.now` and the global timers. */
export const realClock: Clock = {
  now: () => performance.now(),
  setTimeout: (fn, ms) => setTimeout(fn, ms),
  clearTimeout: (h) => clearTimeout(h as ReturnType<typeof setTimeout>),
};

/** Options of {@link DynamicBatcher}. */
export interface BatcherOptions {
  model: string;
  version: string;
  /** How long to wait for a batch to fill after its oldest request arrived, in ms (default 2). */
  maxQueueDelayMs?: number;
  /** Requests waiting at most (default 256). */
  maxQueue?: number;
  /** Batches run at once: the executor's parallel slots, e.g. its worker count (default 1). */
  concurrency?: number;
  metrics?: ServeMetrics;
  clock?: Clock;
  /** Inputs padded along dim 1 to the batch's longest, with their pad value (contract.ts `RunnerOptions.padInputs`). */
  padInputs?: Record<string, number>;
}

interface Request {
  inputs: Record<string, HostTensor>;
  outputs: readonly string[] | undefined;
  rows: number;
  /** Non-batch dims of every input: requests batch together only when these agree (dynamic inner dims). */
  key: string;
  arrived: number;
  resolve: (r: Record<string, HostTensor>) => void;
  reject: (e: Error) => void;
}

/** A {@link ModelRunner} that batches requests onto a {@link BatchExecutor}. */
export class DynamicBatcher implements ModelRunner {
  private readonly queue: Request[] = [];
  private queuedRows = 0;
  private running = 0;
  private timer: unknown;
  private timerAt = 0;
  private draining: Promise<void> | undefined;
  private drained: (() => void) | undefined;
  /** Moving average of one run's time in ms, for Retry-After. */
  private runMs = 0;
  private readonly delay: number;
  private readonly maxQueue: number;
  private readonly concurrency: number;
  private readonly clock: Clock;
  private readonly fixedBatch: boolean;

  constructor(
    readonly info: RunnerInfo,
    private readonly executor: BatchExecutor,
    private readonly opts: BatcherOptions,
  ) {
    this.delay = opts.maxQueueDelayMs ?? 2;
    this.maxQueue = opts.maxQueue ?? 256;
    this.concurrency = opts.concurrency ?? 1;
    this.clock = opts.clock ?? realClock;
    this.fixedBatch = hasFixedBatch(info);
    if (!(this.delay >= 0)) throw new Error(`maxQueueDelayMs must be >= 0 (e.g. --max-queue-delay 2), got ${this.delay}.`);
    if (!(Number.isInteger(this.maxQueue) && this.maxQueue > 0))
      throw new Error(`maxQueue must be a positive integer (e.g. --max-queue 256), got ${this.maxQueue}.`);
    if (!(Number.isInteger(this.concurrency) && this.concurrency > 0)) throw new Error(`concurrency must be a positive integer, got ${this.concurrency}.`);
  }

  /** Requests waiting for a batch now. */
  get pending(): number {
    return this.queue.length;
  }

  infer(inputs: Record<string, HostTensor>, outputs?: readonly string[]): Promise<Record<string, HostTensor>> {
    if (this.draining)
      return Promise.reject(
        new ExecutorUnavailableError(`model "${this.opts.model}" is shutting down or reloading and takes no more requests; retry in a moment.`),
      );
    let rows: number;
    try {
      rows = checkRequest(this.opts.model, this.info, inputs, outputs);
    } catch (e) {
      return Promise.reject(e);
    }
    if (this.queue.length >= this.maxQueue) return Promise.reject(new QueueFullError(this.opts.model, this.retryAfterS()));
    const pad = this.opts.padInputs ?? {};
    const key = this.info.inputs.map((t) => inputs[t.name]!.shape.slice(t.name in pad ? 2 : 1).join('x')).join('|');
    return new Promise((resolve, reject) => {
      this.queue.push({ inputs, outputs, rows, key, arrived: this.clock.now(), resolve, reject });
      this.queuedRows += rows;
      this.schedule();
    });
  }

  drain(): Promise<void> {
    this.draining ??= new Promise<void>((resolve) => {
      this.drained = resolve;
    }).then(() => this.executor.close?.());
    this.schedule();
    return this.draining;
  }

  /** Seconds until the queue has likely room again: the queued batches at the measured time per run; at least 1. */
  private retryAfterS(): number {
    const batches = Math.ceil(this.queuedRows / this.info.maxBatchSize / this.concurrency);
    return Math.max(1, Math.ceil((batches * (this.runMs + this.delay)) / 1000));
  }

  /** Starts batches while a slot is free and a batch is due; otherwise arms the timer for the oldest request. */
  private schedule(): void {
    while (this.running < this.concurrency && this.queue.length) {
      const due = this.queue[0]!.arrived + this.delay;
      const now = this.clock.now();
      if (!this.draining && this.queuedRows < this.info.maxBatchSize && now < due) {
        this.arm(due - now, due);
        return;
      }
      this.disarm();
      void this.runBatch(this.take(now));
    }
    if (!this.queue.length) this.disarm();
    if (this.draining && !this.queue.length && this.running === 0) this.drained?.();
  }

  private arm(ms: number, at: number): void {
    if (this.timer !== undefined && this.timerAt === at) return;
    this.disarm();
    this.timerAt = at;
    this.timer = this.clock.setTimeout(() => {
      this.timer = undefined;
      this.schedule();
    }, ms);
  }

  private disarm(): void {
    if (this.timer === undefined) return;
    this.clock.clearTimeout(this.timer);
    this.timer = undefined;
  }

  /** Takes the oldest request and, in order, every later one that fits the batch and has the same inner dims. */
  private take(now: number): { requests: Request[]; queueS: number[] } {
    const head = this.queue[0]!;
    const requests: Request[] = [];
    let rows = 0;
    for (let i = 0; i < this.queue.length && rows < this.info.maxBatchSize; ) {
      const r = this.queue[i]!;
      if (r.key === head.key && rows + r.rows <= this.info.maxBatchSize) {
        requests.push(r);
        rows += r.rows;
        this.queue.splice(i, 1);
      } else i++;
    }
    this.queuedRows -= rows;
    return { requests, queueS: requests.map((r) => (now - r.arrived) / 1000) };
  }

  private async runBatch({ requests, queueS }: { requests: Request[]; queueS: number[] }): Promise<void> {
    this.running++;
    try {
      const results = await this.execute(requests, queueS);
      for (const [i, r] of results.entries()) {
        if (r instanceof Error) requests[i]!.reject(r);
        else requests[i]!.resolve(r);
      }
    } finally {
      this.running--;
      this.schedule();
    }
  }

  /** Runs `requests` as one batch; on a data failure of a batch of several, each alone. One result or error each. */
  private async execute(requests: Request[], queueS: number[]): Promise<(Record<string, HostTensor> | Error)[]> {
    try {
      return await this.runOnce(requests, queueS);
    } catch (e) {
      const err = e instanceof Error ? e : new Error(String(e));
      if (requests.length === 1 || err instanceof ExecutorUnavailableError) return requests.map(() => err);
      const alone: (Record<string, HostTensor> | Error)[] = [];
      for (const r of requests) {
        try {
          alone.push((await this.runOnce([r], [0]))[0]!);
        } catch (e2) {
          alone.push(e2 instanceof Error ? e2 : new Error(String(e2)));
        }
      }
      return alone;
    }
  }

  private async runOnce(requests: Request[], queueS: number[]): Promise<Record<string, HostTensor>[]> {
    const rows = requests.reduce((a, r) => a + r.rows, 0);
    const batch = this.fixedBatch ? this.info.maxBatchSize : rows;
    const inputs: Record<string, HostTensor> = {};
    for (const spec of this.info.inputs) {
      const first = requests[0]!.inputs[spec.name]!;
      const padValue = this.opts.padInputs?.[spec.name];
      if (padValue !== undefined && first.shape.length === 2) {
        inputs[spec.name] = padRows(
          requests.map((r) => r.inputs[spec.name]!),
          batch,
          padValue,
        );
        continue;
      }
      const per = rowSize(first.shape);
      const data = allocate(first.datatype, batch * per);
      let at = 0;
      for (const r of requests) {
        const t = r.inputs[spec.name]!;
        (data as Float32Array).set(t.data as Float32Array, at);
        at += t.data.length;
      }
      inputs[spec.name] = { datatype: first.datatype, shape: [batch, ...first.shape.slice(1)], data };
    }
    const wanted = requests.some((r) => !r.outputs) ? this.info.outputs.map((t) => t.name) : [...new Set(requests.flatMap((r) => r.outputs!))];
    const start = this.clock.now();
    const out = await this.executor.run(inputs, wanted);
    const ms = this.clock.now() - start;
    this.runMs = this.runMs ? 0.8 * this.runMs + 0.2 * ms : ms;
    this.opts.metrics?.execution(this.opts.model, this.opts.version, rows, requests.length, queueS, ms / 1000);
    return this.split(requests, out, batch, wanted);
  }

  /** Each request's rows of every output it asked for (views, no copies). */
  private split(requests: Request[], out: Record<string, HostTensor>, batch: number, wanted: readonly string[]): Record<string, HostTensor>[] {
    // one request filling the whole batch takes the outputs as they are (even one not batched along dim 0)
    const whole = requests.length === 1 && requests[0]!.rows === batch;
    for (const name of wanted) {
      const t = out[name];
      if (!t) throw new Error(`model "${this.opts.model}" returned no output "${name}"; is the model file the one the server loaded?`);
      if (!whole && t.shape[0] !== batch)
        throw new Error(
          `model "${this.opts.model}" output "${name}" has shape [${t.shape.join(', ')}], whose dim 0 is not the batch of ${batch}; graft serve can only split outputs batched along dim 0. Serve it with --max-batch-size 1.`,
        );
    }
    let row = 0;
    return requests.map((r) => {
      const result: Record<string, HostTensor> = {};
      for (const name of r.outputs ?? wanted) {
        const t = out[name]!;
        const per = rowSize(t.shape);
        result[name] = whole ? t : { datatype: t.datatype, shape: [r.rows, ...t.shape.slice(1)], data: t.data.subarray(row * per, (row + r.rows) * per) };
      }
      row += r.rows;
      return result;
    });
  }
}

/** Concatenates [n_i, T_i] tensors into one [batch, max T_i], each row right-padded with `padValue` (the rest too). */
function padRows(parts: readonly HostTensor[], batch: number, padValue: number): HostTensor {
  const T = Math.max(1, ...parts.map((t) => t.shape[1]!));
  const datatype = parts[0]!.datatype;
  const data = allocate(datatype, batch * T);
  const big = data instanceof BigInt64Array;
  (data as Float32Array).fill((big ? BigInt(padValue) : padValue) as number);
  let row = 0;
  for (const t of parts) {
    const [n, w] = [t.shape[0]!, t.shape[1]!];
    for (let r = 0; r < n; r++, row++) (data as Float32Array).set((t.data as Float32Array).subarray(r * w, (r + 1) * w), row * T);
  }
  return { datatype, shape: [batch, T], data };
}
