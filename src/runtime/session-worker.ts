/**
 * One onnxruntime session in a worker thread: graft's one way to keep `session.run` (which blocks the thread that
 * calls it) off the event loop. The feature extractor (`features/runner.ts`) and `graft serve`'s batched runner
 * (`server/worker-pool.ts`) are both built on it.
 *
 * The worker is a small CommonJS script run with `eval: true`, so it needs no TypeScript loader (the same under
 * tsx and from dist/); its session options come from graft's one factory (`ortSessionOptions`). Tensors travel by
 * ArrayBuffer transfer both ways: the inputs go to the worker without a copy and come back with the answer (so a
 * caller can reuse a few batch buffers for a whole run), and onnxruntime's outputs come back without one.
 */
import { createRequire } from 'node:module';
import { Worker } from 'node:worker_threads';
import type * as ort from 'onnxruntime-node';
import type { TypedArray } from '../tensor.js';
import { withOomAdvice } from './ort-errors.js';
import { modelLoadError, ORT_LOG_LEVEL, ortSessionOptions } from './session.js';

/** A tensor as it crosses the thread boundary: onnxruntime's type name, dims and a typed array (transferred). */
export interface WireTensor {
  type: string;
  dims: number[];
  data: TypedArray;
}

/** What a worker reports once its session is created. */
export interface SessionIo {
  inputNames: string[];
  outputNames: string[];
  inputMetadata: ort.InferenceSession.ValueMetadata[];
  outputMetadata: ort.InferenceSession.ValueMetadata[];
}

/** One run: the feeds and the outputs wanted. */
export interface SessionRequest {
  feeds: Record<string, WireTensor>;
  outputs: readonly string[];
}

/** The answer to one run: the outputs asked for, and the inputs handed back (their buffers, for reuse). */
export interface SessionWorkerResult {
  out: Record<string, WireTensor>;
  inputs: Record<string, WireTensor>;
}

interface Reply {
  id: number;
  ready?: SessionIo;
  error?: string;
  out?: Record<string, WireTensor>;
  inputs?: Record<string, WireTensor>;
}

/**
 * The worker script: loads the session from `workerData`, then answers `{ id, feeds, outputs }` messages one at a
 * time with `{ id, out, inputs }` or `{ id, error, inputs }` (`inputs`: the feeds, handed back).
 */
export const SESSION_WORKER_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads');
const ort = require(workerData.ortPath);
ort.env.logLevel = workerData.logLevel;
const msgOf = (e) => (e && e.message) || String(e);
const meta = (ms) => (ms || []).map((m) => ({ name: m.name, isTensor: m.isTensor, type: m.type, shape: m.isTensor ? [...m.shape] : [] }));
const buffersOf = (ts, into) => { for (const name in ts) { const b = ts[name].data.buffer; if (b && !into.includes(b)) into.push(b); } return into; };
const reply = (msg, ts) => { try { parentPort.postMessage(msg, buffersOf(ts, [])); } catch { parentPort.postMessage(msg); } };
let session;
let chain = ort.InferenceSession.create(workerData.model, workerData.options).then(
  (s) => { session = s; parentPort.postMessage({ id: 0, ready: { inputNames: s.inputNames, outputNames: s.outputNames, inputMetadata: meta(s.inputMetadata), outputMetadata: meta(s.outputMetadata) } }); },
  (e) => { parentPort.postMessage({ id: 0, error: msgOf(e) }); },
);
parentPort.on('message', (m) => {
  chain = chain.then(async () => {
    if (!session) return reply({ id: m.id, error: 'the session is not loaded', inputs: m.feeds }, m.feeds);
    let out;
    try {
      const feeds = {};
      for (const name in m.feeds) { const t = m.feeds[name]; feeds[name] = new ort.Tensor(t.type, t.data, t.dims); }
      const r = await session.run(feeds, m.outputs);
      out = {};
      for (const name of m.outputs) { const y = r[name]; out[name] = { type: y.type, dims: [...y.dims], data: y.data }; }
    } catch (e) {
      return reply({ id: m.id, error: msgOf(e), inputs: m.feeds }, m.feeds);
    }
    // a buffer onnxruntime will not let go of is copied instead (reply's catch)
    reply({ id: m.id, out, inputs: m.feeds }, { ...out, ...m.feeds });
  });
});
`;

/** Options of {@link SessionWorker}. */
export interface SessionWorkerOptions {
  /** The model in error messages, e.g. `the feature extractor` or `"cats" version 2`. */
  label: string;
  /** onnxruntime intra-op threads. */
  threads: number;
  /** Let idle onnxruntime threads spin-wait (default: as every graft session, see `SessionOptions.spinning`). */
  spinning?: boolean;
  /** The worker script (default {@link SESSION_WORKER_SOURCE}); tests append to it, e.g. to die on a given input. */
  source?: string;
  /** The error a failed run rejects with (default: onnxruntime's message, with graft's advice when memory ran out). */
  runError?: (message: string) => Error;
  /** The error for a worker that died (a native crash, out of memory) before or after its session loaded. */
  deathError?: (why: string, wasReady: boolean) => Error;
  /** Called once when the worker dies (not when it is closed), after its runs were failed with the death error. */
  onDeath?: (error: Error, wasReady: boolean) => void;
}

const ortPath = createRequire(import.meta.url).resolve('onnxruntime-node');

/** An onnxruntime session in a worker thread; see the module comment. Runs queue in the worker, one at a time. */
export class SessionWorker {
  /** The worker thread (for tests and diagnostics). */
  readonly worker: Worker;
  /** Resolves with the session's inputs and outputs once loaded; rejects with graft's load or death error. */
  readonly ready: Promise<SessionIo>;
  /** Set once the worker cannot run anything more (it died, or could not load the model). */
  failure: Error | undefined;
  private loaded = false;
  private closed = false;
  private nextId = 1;
  private readonly pending = new Map<number, { resolve: (r: SessionWorkerResult) => void; reject: (e: Error) => void }>();
  /** Runs accepted and not yet answered; close() waits for them (terminating a worker while onnxruntime-node runs in it aborts the process). */
  private readonly accepted = new Set<Promise<unknown>>();

  /** Starts the worker. @param model ONNX bytes (the worker gets its copy). */
  constructor(
    model: Uint8Array,
    private readonly opts: SessionWorkerOptions,
  ) {
    const options = ortSessionOptions({ threads: opts.threads, spinning: opts.spinning });
    this.worker = new Worker(opts.source ?? SESSION_WORKER_SOURCE, {
      eval: true,
      execArgv: [],
      workerData: { ortPath, model, options, logLevel: ORT_LOG_LEVEL },
    });
    let resolveReady!: (io: SessionIo) => void;
    let rejectReady!: (e: Error) => void;
    this.ready = new Promise<SessionIo>((res, rej) => {
      resolveReady = res;
      rejectReady = rej;
    });
    this.ready.catch(() => {}); // observed through run(); avoid an unhandled rejection when nobody runs
    this.worker.on('message', (m: Reply) => {
      if (m.id === 0) {
        if (m.ready) {
          this.loaded = true;
          resolveReady(m.ready);
        } else {
          this.fail(modelLoadError(opts.label, m.error ?? 'unknown error'));
          rejectReady(this.failure!);
        }
        return;
      }
      const p = this.pending.get(m.id);
      if (!p) return;
      this.pending.delete(m.id);
      if (m.error !== undefined) p.reject(opts.runError ? opts.runError(m.error) : (withOomAdvice(new Error(m.error)) as Error));
      else p.resolve({ out: m.out ?? {}, inputs: m.inputs ?? {} });
    });
    const died = (why: string) => {
      if (this.closed || this.failure) return;
      const err =
        opts.deathError?.(why, this.loaded) ?? new Error(`The inference worker for ${opts.label} ${why}. If memory ran out, retry with a smaller batch size.`);
      this.fail(err);
      rejectReady(err);
      void this.worker.terminate();
      opts.onDeath?.(err, this.loaded);
    };
    this.worker.on('error', (e) => died(`crashed (${e.message})`));
    this.worker.on('exit', (code) => died(`exited unexpectedly (code ${code})`));
  }

  /** Runs posted and not answered yet. */
  get inFlight(): number {
    return this.pending.size;
  }

  private fail(e: Error): void {
    this.failure ??= e;
    for (const p of this.pending.values()) p.reject(this.failure);
    this.pending.clear();
  }

  /**
   * Runs the session on the feeds `request` makes once the session is loaded (it may check them against the
   * session's inputs, and throw), and returns the outputs it names. The feeds' buffers are transferred (detached
   * here) and handed back in the result. A run accepted before {@link close} is answered.
   */
  run(request: (io: SessionIo) => SessionRequest): Promise<SessionWorkerResult> {
    if (this.closed) return Promise.reject(new Error(`The inference worker for ${this.opts.label} is closed; create a new one.`));
    const answer = this.post(request);
    const settled = answer.then(
      () => {},
      () => {},
    );
    this.accepted.add(settled);
    void settled.then(() => this.accepted.delete(settled));
    return answer;
  }

  private async post(request: (io: SessionIo) => SessionRequest): Promise<SessionWorkerResult> {
    const io = await this.ready;
    if (this.failure) throw this.failure;
    const { feeds, outputs } = request(io);
    const transfer: ArrayBuffer[] = [];
    for (const t of Object.values(feeds)) {
      const b = t.data.buffer as ArrayBuffer;
      if (!transfer.includes(b)) transfer.push(b);
    }
    const id = this.nextId++;
    return new Promise<SessionWorkerResult>((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      this.worker.postMessage({ id, feeds, outputs: [...outputs] }, transfer);
    });
  }

  /**
   * Stops the worker once the runs already accepted have been answered; runs asked for after this fail. Safe to
   * call twice.
   */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await Promise.all(this.accepted);
    this.fail(new Error(`The inference worker for ${this.opts.label} is closed.`));
    await this.worker.terminate();
  }
}
