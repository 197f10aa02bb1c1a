/**
 * onnxruntime sessions of one model in worker threads, so `session.run` (which blocks the thread that calls it)
 * never stalls the server's event loop: one {@link SessionWorker} per worker (graft's one session-in-a-thread,
 * shared with the feature extractor), one run at a time per worker. The batcher's executor ({@link BatchExecutor}).
 *
 * Tensors travel by ArrayBuffer transfer both ways: the batcher's concatenated inputs go to the worker without a
 * copy, and onnxruntime's outputs come back without one.
 *
 * A worker that dies (a native crash, out of memory) fails its in-flight batch with an
 * {@link ExecutorUnavailableError} naming the model, and is replaced by a fresh one; a worker that cannot load the
 * model is not retried.
 */

import type { Worker } from 'node:worker_threads';
import { withOomAdvice } from '../runtime/ort-errors.js';
import { SESSION_WORKER_SOURCE, type SessionIo, SessionWorker, type WireTensor } from '../runtime/session-worker.js';
import { type BatchExecutor, ExecutorUnavailableError } from './batcher.js';
import type { HostTensor } from './contract.js';
import { oipDatatypeOf, ortTypeOf } from './tensors.js';

export type { SessionIo } from '../runtime/session-worker.js';

/** The worker script (tests append to it, e.g. to make a worker die on a given input the way a native crash would). */
export const WORKER_SOURCE = SESSION_WORKER_SOURCE;

/** Options of {@link WorkerPool}. */
export interface WorkerPoolOptions {
  /** Model name (and version) for error messages, e.g. `"cats" version 2`. */
  label: string;
  /** Workers, each with one session (default 1). */
  workers?: number;
  /**
   * The worker script (default {@link WORKER_SOURCE}); tests append to it, e.g. to make a worker die on a given
   * input the way a native crash would.
   */
  source?: string;
  /** onnxruntime intra-op threads per session (default: graft's default thread count split across the workers). */
  threads: number;
}

interface Slot {
  session: SessionWorker;
  busy: number;
}

/** A pool of onnxruntime sessions in worker threads; see the module comment. */
export class WorkerPool implements BatchExecutor {
  private readonly slots: Slot[] = [];
  private closed = false;
  /** Batches posted and not answered; close() waits for them. */
  private readonly running = new Set<Promise<unknown>>();
  private warmBatch: (() => { inputs: Record<string, HostTensor>; outputs: readonly string[] }) | undefined;
  /** Workers replaced after a crash so far. */
  restarts = 0;

  /**
   * Starts the workers; {@link open} resolves when every session is loaded.
   * @param model ONNX bytes (each worker gets its copy).
   */
  constructor(
    private readonly model: Uint8Array,
    private readonly opts: WorkerPoolOptions,
  ) {
    const n = opts.workers ?? 1;
    if (!(Number.isInteger(n) && n > 0)) throw new Error(`workers must be a positive integer, got ${n}.`);
    for (let i = 0; i < n; i++) this.slots.push(this.start());
  }

  /** The worker threads (for tests and diagnostics). */
  get workers(): readonly Worker[] {
    return this.slots.map((s) => s.session.worker);
  }

  /** Batches posted to a worker and not answered yet. */
  get inFlight(): number {
    return this.slots.reduce((a, s) => a + s.session.inFlight, 0);
  }

  /** Resolves with the model's inputs and outputs once every worker has loaded it; rejects naming the model otherwise. */
  async open(): Promise<SessionIo> {
    try {
      const [io] = await Promise.all(this.slots.map((s) => s.session.ready));
      return io!;
    } catch (e) {
      await this.close();
      throw e;
    }
  }

  private start(): Slot {
    const label = this.opts.label;
    const slot: Slot = { busy: 0 } as Slot;
    slot.session = new SessionWorker(this.model, {
      label,
      threads: this.opts.threads,
      source: this.opts.source,
      runError: (message) => withOomAdvice(new Error(`${label} failed in onnxruntime: ${message.replace(/\.+$/, '')}.`)) as Error,
      deathError: (why, wasReady) =>
        new ExecutorUnavailableError(
          `the inference worker of ${label} ${why}${wasReady ? '; it is being restarted, retry the request' : ' while loading the model'}. If memory ran out, lower --max-batch-size or the number of workers.`,
        ),
      onDeath: (_err, wasReady) => {
        slot.busy = 0;
        if (this.closed || !wasReady) return; // a crash while loading would only repeat, so that one stays dead
        // replace the worker in place
        this.restarts++;
        const i = this.slots.indexOf(slot);
        if (i < 0) return;
        const fresh = this.start();
        this.slots[i] = fresh;
        // queued ahead of any request in the new worker; a failure shows in the runs that follow
        const b = this.warmBatch?.();
        if (b) this.runOn(fresh, b.inputs, b.outputs).catch(() => {});
      },
    });
    return slot;
  }

  async run(inputs: Record<string, HostTensor>, outputs: readonly string[]): Promise<Record<string, HostTensor>> {
    if (this.closed) throw new ExecutorUnavailableError(`${this.opts.label} is closed; it takes no more requests.`);
    // the least busy live worker (the batcher runs at most one batch per worker at a time)
    const slot = this.slots.filter((s) => !s.session.failure).sort((a, b) => a.busy - b.busy)[0];
    if (!slot) throw new ExecutorUnavailableError(`no inference worker of ${this.opts.label} could load the model; restart the server after fixing it.`);
    return this.runOn(slot, inputs, outputs);
  }

  /**
   * Runs one batch on every worker now, and on each worker that later replaces a crashed one, before it serves:
   * onnxruntime's first run at a new size allocates its buffers and plans memory (seconds for MobileNetV2 at
   * batch 32), which would otherwise land on the first full batch of requests. `make` builds a fresh batch per
   * worker (it is transferred).
   */
  async warmUp(make: () => { inputs: Record<string, HostTensor>; outputs: readonly string[] }): Promise<void> {
    this.warmBatch = make;
    await Promise.all(
      this.slots.map((s) => {
        const b = make();
        return this.runOn(s, b.inputs, b.outputs);
      }),
    );
  }

  private async runOn(slot: Slot, inputs: Record<string, HostTensor>, outputs: readonly string[]): Promise<Record<string, HostTensor>> {
    const feeds: Record<string, WireTensor> = {};
    for (const [name, t] of Object.entries(inputs)) feeds[name] = { type: ortTypeOf(t.datatype), dims: t.shape, data: t.data };
    slot.busy++;
    const done = slot.session.run(() => ({ feeds, outputs }));
    this.running.add(done);
    try {
      return this.fromWire((await done).out);
    } finally {
      this.running.delete(done);
      slot.busy = Math.max(0, slot.busy - 1);
    }
  }

  private fromWire(out: Record<string, WireTensor>): Record<string, HostTensor> {
    const r: Record<string, HostTensor> = {};
    for (const [name, t] of Object.entries(out)) {
      const datatype = oipDatatypeOf(t.type, `${this.opts.label} output "${name}"`) as HostTensor['datatype'];
      r[name] = { datatype, shape: t.dims, data: t.data as HostTensor['data'] };
    }
    return r;
  }

  /**
   * Stops every worker once the batches already posted have finished (terminating a worker while onnxruntime-node
   * runs in it aborts the whole process); runs asked for after this fail. Safe to call twice.
   */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await Promise.allSettled(this.running);
    await Promise.all(this.slots.map((s) => s.session.close()));
  }
}
