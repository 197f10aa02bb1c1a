/**
 * Runs a one-input, one-output float32 model in a worker thread, so the main thread's event loop stays free
 * while onnxruntime computes: sharp's decode callbacks, normalisation, hashing and progress output keep
 * running during inference (onnxruntime-node's `session.run` blocks the thread that calls it).
 *
 * Input batches travel by ArrayBuffer transfer (zero-copy) and come back with the result, so the caller can
 * reuse the same few batch buffers for a whole run.
 */
import { createRequire } from 'node:module';
import { Worker } from 'node:worker_threads';
import type * as ort from 'onnxruntime-node';
import { checkFeeds, describeInputs, type FeedCheckOptions, type InputSpec } from '../runtime/feeds.js';
import { withOomAdvice } from '../runtime/ort-errors.js';
import { modelLoadError, ORT_LOG_LEVEL, ortSessionOptions } from '../runtime/session.js';

/** Options of {@link InferenceWorker}. */
export interface InferenceWorkerOptions {
  /** onnxruntime intra-op threads (default: all cores, like `createSession`). */
  threads: number;
  /** Name used in error messages (e.g. "feature extractor"). */
  label?: string;
  /** Let idle onnxruntime threads spin-wait (default: as every graft session, see `SessionOptions.spinning`). */
  spinning?: boolean;
}

/** The result of one batch. */
export interface WorkerRunResult {
  /** The input buffer, handed back for reuse (a view of the whole transferred ArrayBuffer). */
  buffer: Float32Array;
  /** The single output, row-major. */
  output: Float32Array;
  /** Its dims as onnxruntime reported them. */
  dims: number[];
}

interface WorkerMessage {
  id: number;
  ready?: boolean;
  error?: string;
  inputs?: string[];
  meta?: ort.InferenceSession.ValueMetadata[];
  buffer?: ArrayBuffer;
  data?: Float32Array;
  dims?: number[];
}

interface Pending {
  resolve: (r: WorkerRunResult) => void;
  reject: (e: Error) => void;
}

// Plain CommonJS run with `eval: true`, so it needs no TypeScript loader in the worker.
const WORKER_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads');
const ort = require(workerData.ortPath);
ort.env.logLevel = workerData.logLevel;
const msgOf = (e) => (e && e.message) || String(e);
let session;
const ready = ort.InferenceSession.create(workerData.model, workerData.options).then(
  (s) => { session = s; const meta = (s.inputMetadata || []).map((m) => ({ name: m.name, isTensor: m.isTensor, type: m.type, shape: m.isTensor ? [...m.shape] : [] }));
    parentPort.postMessage({ id: 0, ready: true, inputs: s.inputNames, outputs: s.outputNames, meta }); },
  (e) => { parentPort.postMessage({ id: 0, error: msgOf(e) }); },
);
let chain = ready;
parentPort.on('message', (m) => {
  chain = chain.then(async () => {
    let reply;
    try {
      const x = new Float32Array(m.buffer, 0, m.length);
      const r = await session.run({ [session.inputNames[0]]: new ort.Tensor('float32', x, m.dims) });
      const y = r[session.outputNames[0]];
      if (y.type !== 'float32') throw new Error('the output "' + session.outputNames[0] + '" is ' + y.type + ', not float32');
      reply = { id: m.id, buffer: m.buffer, data: y.data, dims: y.dims };
    } catch (e) {
      reply = { id: m.id, buffer: m.buffer, error: msgOf(e) };
    }
    parentPort.postMessage(reply, [m.buffer]);
  });
});
`;

/**
 * An onnxruntime session living in a worker thread. Create it, `run` batches (one at a time is enough to
 * keep it busy; further calls queue), then `close`.
 */
export class InferenceWorker {
  private readonly worker: Worker;
  private readonly pending = new Map<number, Pending>();
  private nextId = 1;
  private failure: Error | undefined;
  private closed = false;
  /** Runs accepted and not yet answered; close() waits for them (terminating a worker while onnxruntime-node runs in it aborts the process). */
  private readonly accepted = new Set<Promise<unknown>>();
  /** The session's inputs, known once it is ready; each batch is checked against them before it is posted. */
  private inputs: readonly InputSpec[] = [];
  private readonly check: FeedCheckOptions;
  /** Resolves when the session is created; rejects with onnxruntime's reason when it cannot be. */
  readonly ready: Promise<void>;

  /**
   * Starts the worker and begins creating the session (asynchronously; `run` waits for it).
   * @param model ONNX bytes (copied to the worker).
   */
  constructor(model: Uint8Array, opts: InferenceWorkerOptions) {
    const label = opts.label ?? 'model';
    const ortPath = createRequire(import.meta.url).resolve('onnxruntime-node');
    // the session itself is created in the worker (a plain CommonJS script, which cannot import graft's
    // TypeScript), from the options graft's one session factory builds
    const options = ortSessionOptions({ threads: opts.threads, spinning: opts.spinning });
    this.check = { what: `the ${label} worker` };
    this.worker = new Worker(WORKER_SOURCE, { eval: true, execArgv: [], workerData: { ortPath, model, options, logLevel: ORT_LOG_LEVEL } });
    let readyResolve!: () => void;
    let readyReject!: (e: Error) => void;
    this.ready = new Promise<void>((res, rej) => {
      readyResolve = res;
      readyReject = rej;
    });
    this.ready.catch(() => {}); // observed through run(); avoid an unhandled rejection when nobody runs
    this.worker.on('message', (m: WorkerMessage) => {
      if (m.id === 0) {
        if (m.error) {
          this.fail(modelLoadError(`the ${label}`, m.error));
          readyReject(this.failure!);
        } else {
          this.inputs = describeInputs(m.inputs ?? [], m.meta);
          readyResolve();
        }
        return;
      }
      const p = this.pending.get(m.id);
      if (!p) return;
      this.pending.delete(m.id);
      if (m.error) p.reject(withOomAdvice(new Error(m.error)) as Error);
      else p.resolve({ buffer: new Float32Array(m.buffer!), output: m.data!, dims: m.dims! });
    });
    this.worker.on('error', (e) => {
      this.fail(new Error(`The inference worker for the ${label} crashed: ${e.message}. Retry with a smaller batchSize if memory ran out.`));
      readyReject(this.failure!);
    });
    this.worker.on('exit', (code) => {
      if (!this.closed) {
        this.fail(new Error(`The inference worker for the ${label} exited unexpectedly (code ${code}). Retry with a smaller batchSize if memory ran out.`));
        readyReject(this.failure!);
      }
    });
  }

  private fail(e: Error): void {
    this.failure ??= e;
    for (const p of this.pending.values()) p.reject(this.failure);
    this.pending.clear();
  }

  /**
   * Runs one batch. `input` must be a Float32Array over a whole ArrayBuffer it owns; the buffer is
   * transferred (detached here) and returned in the result. The first `product(dims)` values are fed.
   * @throws onnxruntime's error message (the caller adds which batch it was).
   */
  run(input: Float32Array, dims: readonly number[]): Promise<WorkerRunResult> {
    if (this.closed) return Promise.reject(new Error('InferenceWorker.run: the worker is closed; create a new one.'));
    const answer = this.post(input, dims);
    // accepted before close(): close() waits for it
    const settled = answer.then(
      () => {},
      () => {},
    );
    this.accepted.add(settled);
    void settled.then(() => this.accepted.delete(settled));
    return answer;
  }

  private async post(input: Float32Array, dims: readonly number[]): Promise<WorkerRunResult> {
    await this.ready;
    if (this.failure) throw this.failure;
    if (input.byteOffset !== 0 || input.byteLength !== input.buffer.byteLength)
      throw new Error('InferenceWorker.run: the input must span its whole ArrayBuffer (it is transferred); allocate it with new Float32Array(n).');
    checkFeeds(this.inputs, { [this.inputs[0]?.name ?? '']: { type: 'float32', dims } }, this.check);
    const length = dims.reduce((a, b) => a * b, 1);
    const id = this.nextId++;
    return new Promise<WorkerRunResult>((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      this.worker.postMessage({ id, buffer: input.buffer, length, dims: [...dims] }, [input.buffer as ArrayBuffer]);
    });
  }

  /**
   * Stops the worker once the batches already posted have been answered (terminating it while onnxruntime-node
   * runs a batch aborts the whole process); runs asked for after this fail. Safe to call twice.
   */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await Promise.all(this.accepted);
    this.fail(new Error('InferenceWorker: closed.'));
    await this.worker.terminate();
  }
}
