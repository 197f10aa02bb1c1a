/**
 * Runs a one-input, one-output float32 model in a worker thread (a {@link SessionWorker}), so the main thread's
 * event loop stays free while onnxruntime computes: sharp's decode callbacks, normalisation, hashing and progress
 * output keep running during inference.
 *
 * Input batches travel by ArrayBuffer transfer (zero-copy) and come back with the result, so the caller can
 * reuse the same few batch buffers for a whole run.
 */
import { checkFeeds, describeInputs, type FeedCheckOptions, type InputSpec } from '../runtime/feeds.js';
import { SessionWorker } from '../runtime/session-worker.js';

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

/**
 * An onnxruntime session living in a worker thread. Create it, `run` batches (one at a time is enough to
 * keep it busy; further calls queue), then `close`.
 */
export class InferenceWorker {
  private readonly session: SessionWorker;
  /** The session's inputs and its one output, known once it is ready; each batch is checked against them before it is posted. */
  private io: { inputs: readonly InputSpec[]; output: string } = { inputs: [], output: '' };
  private readonly check: FeedCheckOptions;
  private closed = false;
  /** Resolves when the session is created; rejects with onnxruntime's reason when it cannot be. */
  readonly ready: Promise<void>;

  /**
   * Starts the worker and begins creating the session from `model` (ONNX bytes; the worker gets a copy).
   */
  constructor(model: Uint8Array, opts: InferenceWorkerOptions) {
    const label = opts.label ?? 'model';
    this.check = { what: `the ${label} worker` };
    this.session = new SessionWorker(model, {
      label: `the ${label}`,
      threads: opts.threads,
      spinning: opts.spinning,
      deathError: (why) => new Error(`The inference worker for the ${label} ${why}. Retry with a smaller batchSize if memory ran out.`),
    });
    this.ready = this.session.ready.then((io) => {
      this.io = { inputs: describeInputs(io.inputNames, io.inputMetadata), output: io.outputNames[0] ?? '' };
    });
    this.ready.catch(() => {}); // observed through run(); avoid an unhandled rejection when nobody runs
  }

  /**
   * Runs one batch. `input` must be a Float32Array over a whole ArrayBuffer it owns; the buffer is
   * transferred (detached here) and returned in the result. The first `product(dims)` values are fed.
   * @throws onnxruntime's error message (the caller adds which batch it was).
   */
  async run(input: Float32Array, dims: readonly number[]): Promise<WorkerRunResult> {
    if (this.closed) throw new Error('InferenceWorker.run: the worker is closed; create a new one.');
    if (input.byteOffset !== 0 || input.byteLength !== input.buffer.byteLength)
      throw new Error('InferenceWorker.run: the input must span its whole ArrayBuffer (it is transferred); allocate it with new Float32Array(n).');
    const length = dims.reduce((a, b) => a * b, 1);
    let name = '';
    // accepted now (close() waits for it); built and checked once the session's inputs are known
    const r = await this.session.run(() => {
      name = this.io.inputs[0]?.name ?? '';
      checkFeeds(this.io.inputs, { [name]: { type: 'float32', dims } }, this.check);
      return { feeds: { [name]: { type: 'float32', dims: [...dims], data: new Float32Array(input.buffer, 0, length) } }, outputs: [this.io.output] };
    });
    const y = r.out[this.io.output]!;
    const back = new Float32Array(r.inputs[name]!.data.buffer as ArrayBuffer);
    if (y.type !== 'float32') throw new Error(`the output "${this.io.output}" is ${y.type}, not float32`);
    return { buffer: back, output: y.data as Float32Array, dims: y.dims };
  }

  /**
   * Stops the worker once the batches already posted have been answered (terminating it while onnxruntime-node
   * runs a batch aborts the whole process); runs asked for after this fail. Safe to call twice.
   */
  async close(): Promise<void> {
    this.closed = true;
    await this.session.close();
  }
}
