/**
 * onnxruntime sessions of one model in worker threads, so `session.run` (which blocks the thread that calls it)
 * never stalls the server's event loop: one session per worker, one run at a time per worker. The batcher's
 * executor ({@link BatchExecutor}).
 *
 * Tensors travel by ArrayBuffer transfer both ways: the batcher's concatenated inputs go to the worker without a
 * copy, and onnxruntime's outputs come back without one. As in the feature-extraction worker
 * (`features/runner.ts`), the worker is a small CommonJS script run with `eval: true`, so it needs no TypeScript
 * loader (the same under tsx and from dist/), and its session options come from graft's one factory
 * (`ortSessionOptions`).
 *
 * A worker that dies (a native crash, out of memory) fails its in-flight batch with an
 * {@link ExecutorUnavailableError} naming the model, and is replaced by a fresh one; a worker that cannot load the
 * model is not retried.
 */
import { createRequire } from 'node:module';
import { Worker } from 'node:worker_threads';
import type * as ort from 'onnxruntime-node';
import { withOomAdvice } from '../runtime/ort-errors.js';
import { modelLoadError, ORT_LOG_LEVEL, ortSessionOptions } from '../runtime/session.js';
import { type BatchExecutor, ExecutorUnavailableError } from './batcher.js';
import type { HostTensor } from './contract.js';
import { oipDatatypeOf, ortTypeOf } from './tensors.js';

/** What a worker reports once its session is created. */
export interface SessionIo {
  inputNames: string[];
  outputNames: string[];
  inputMetadata: ort.InferenceSession.ValueMetadata[];
  outputMetadata: ort.InferenceSession.ValueMetadata[];
}

interface WireTensor {
  type: string;
  dims: number[];
  data: HostTensor['data'];
}

interface Reply {
  id: number;
  ready?: SessionIo;
  error?: string;
  out?: Record<string, WireTensor>;
}

/**
 * The worker: a CommonJS script (run with `eval: true`) that loads the session from `workerData` and answers
 * `{ id, feeds, outputs }` messages one at a time with `{ id, out }` or `{ id, error }`.
 */
export const WORKER_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads');
const ort = require(workerData.ortPath);
ort.env.logLevel = workerData.logLevel;
const msgOf = (e) => (e && e.message) || String(e);
const meta = (ms) => (ms || []).map((m) => ({ name: m.name, isTensor: m.isTensor, type: m.type, shape: m.isTensor ? [...m.shape] : [] }));
let session;
let chain = ort.InferenceSession.create(workerData.model, workerData.options).then(
  (s) => { session = s; parentPort.postMessage({ id: 0, ready: { inputNames: s.inputNames, outputNames: s.outputNames, inputMetadata: meta(s.inputMetadata), outputMetadata: meta(s.outputMetadata) } }); },
  (e) => { parentPort.postMessage({ id: 0, error: msgOf(e) }); },
);
parentPort.on('message', (m) => {
  chain = chain.then(async () => {
    if (!session) return parentPort.postMessage({ id: m.id, error: 'the session is not loaded' });
    let out;
    try {
      const feeds = {};
      for (const name in m.feeds) { const t = m.feeds[name]; feeds[name] = new ort.Tensor(t.type, t.data, t.dims); }
      const r = await session.run(feeds, m.outputs);
      out = {};
      for (const name of m.outputs) { const y = r[name]; out[name] = { type: y.type, dims: [...y.dims], data: y.data }; }
    } catch (e) {
      return parentPort.postMessage({ id: m.id, error: msgOf(e) });
    }
    const transfer = [];
    for (const name in out) { const b = out[name].data.buffer; if (b && !transfer.includes(b)) transfer.push(b); }
    try { parentPort.postMessage({ id: m.id, out }, transfer); }
    catch { parentPort.postMessage({ id: m.id, out }); } // a buffer onnxruntime will not let go of: copied instead
  });
});
`;

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
  worker: Worker;
  busy: number;
  pending: Map<number, { resolve: (o: Record<string, HostTensor>) => void; reject: (e: Error) => void }>;
  ready: Promise<SessionIo>;
  /** Set when the worker exited; its runs fail until it is replaced. */
  dead?: Error;
}

/** A pool of onnxruntime sessions in worker threads; see the module comment. */
export class WorkerPool implements BatchExecutor {
  private readonly slots: Slot[] = [];
  private nextId = 1;
  private closed = false;
  /** Batches posted and not answered; close() waits for them. */
  private readonly running = new Set<Promise<unknown>>();
  private readonly ortPath = createRequire(import.meta.url).resolve('onnxruntime-node');
  private readonly options: ort.InferenceSession.SessionOptions;
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
    this.options = ortSessionOptions({ threads: opts.threads });
    for (let i = 0; i < n; i++) this.slots.push(this.start());
  }

  /** The worker threads (for tests and diagnostics). */
  get workers(): readonly Worker[] {
    return this.slots.map((s) => s.worker);
  }

  /** Batches posted to a worker and not answered yet. */
  get inFlight(): number {
    return this.slots.reduce((a, s) => a + s.pending.size, 0);
  }

  /** Resolves with the model's inputs and outputs once every worker has loaded it; rejects naming the model otherwise. */
  async open(): Promise<SessionIo> {
    try {
      const [io] = await Promise.all(this.slots.map((s) => s.ready));
      return io!;
    } catch (e) {
      await this.close();
      throw e;
    }
  }

  private start(): Slot {
    const worker = new Worker(this.opts.source ?? WORKER_SOURCE, {
      eval: true,
      execArgv: [],
      workerData: { ortPath: this.ortPath, model: this.model, options: this.options, logLevel: ORT_LOG_LEVEL },
    });
    let loaded: (io: SessionIo) => void;
    let refused: (e: Error) => void;
    const slot: Slot = {
      worker,
      busy: 0,
      pending: new Map(),
      ready: new Promise<SessionIo>((res, rej) => {
        loaded = res;
        refused = rej;
      }),
    };
    slot.ready.catch(() => {}); // observed through open() and run()
    let isReady = false;
    worker.on('message', (m: Reply) => {
      if (m.id === 0) {
        if (m.ready) {
          isReady = true;
          loaded(m.ready);
        } else {
          const err = modelLoadError(this.opts.label, m.error ?? 'unknown error');
          slot.dead = err;
          refused(err);
        }
        return;
      }
      const p = slot.pending.get(m.id);
      if (!p) return;
      slot.pending.delete(m.id);
      if (m.error) p.reject(withOomAdvice(new Error(`${this.opts.label} failed in onnxruntime: ${m.error.replace(/\.+$/, '')}.`)) as Error);
      else p.resolve(this.fromWire(m.out!));
    });
    const died = (why: string) => {
      if (this.closed || slot.dead) return;
      const err = new ExecutorUnavailableError(
        `the inference worker of ${this.opts.label} ${why}${isReady ? '; it is being restarted, retry the request' : ' while loading the model'}. If memory ran out, lower --max-batch-size or the number of workers.`,
      );
      slot.dead = err;
      refused(err);
      for (const p of slot.pending.values()) p.reject(err);
      slot.pending.clear();
      slot.busy = 0;
      void worker.terminate();
      if (isReady) {
        // replace the worker in place; a crash while loading would only repeat, so that one stays dead
        this.restarts++;
        const i = this.slots.indexOf(slot);
        if (i >= 0) {
          const fresh = this.start();
          this.slots[i] = fresh;
          // queued ahead of any request in the new worker; a failure shows in the runs that follow
          const b = this.warmBatch?.();
          if (b) this.runOn(fresh, b.inputs, b.outputs).catch(() => {});
        }
      }
    };
    worker.on('error', (e) => died(`crashed (${e.message})`));
    worker.on('exit', (code) => died(`exited unexpectedly (code ${code})`));
    return slot;
  }

  async run(inputs: Record<string, HostTensor>, outputs: readonly string[]): Promise<Record<string, HostTensor>> {
    if (this.closed) throw new ExecutorUnavailableError(`${this.opts.label} is closed; it takes no more requests.`);
    // the least busy live worker (the batcher runs at most one batch per worker at a time)
    const slot = this.slots.filter((s) => !s.dead).sort((a, b) => a.busy - b.busy)[0];
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
    await slot.ready;
    if (slot.dead) throw slot.dead;
    const feeds: Record<string, WireTensor> = {};
    const transfer: ArrayBuffer[] = [];
    for (const [name, t] of Object.entries(inputs)) {
      feeds[name] = { type: ortTypeOf(t.datatype), dims: t.shape, data: t.data };
      const b = t.data.buffer as ArrayBuffer;
      if (!transfer.includes(b)) transfer.push(b);
    }
    const id = this.nextId++;
    slot.busy++;
    const done = new Promise<Record<string, HostTensor>>((resolve, reject) => {
      slot.pending.set(id, { resolve, reject });
      slot.worker.postMessage({ id, feeds, outputs: [...outputs] }, transfer);
    });
    this.running.add(done);
    try {
      return await done;
    } finally {
      this.running.delete(done);
      slot.busy = Math.max(0, slot.busy - 1);
    }
  }

  private fromWire(out: Record<string, WireTensor>): Record<string, HostTensor> {
    const r: Record<string, HostTensor> = {};
    for (const [name, t] of Object.entries(out)) {
      const datatype = oipDatatypeOf(t.type, `${this.opts.label} output "${name}"`) as HostTensor['datatype'];
      r[name] = { datatype, shape: t.dims, data: t.data };
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
    await Promise.all(this.slots.map((s) => s.worker.terminate()));
  }
}
