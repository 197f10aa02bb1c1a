/**
 * The seam inside `graft serve` between the HTTP layer (routes, OIP JSON, image decoding, limits: `app.ts` and
 * friends) and inference (sessions, the dynamic batcher, worker threads: the runners). Both sides code against
 * these types only, so the naive one-run-per-request runner and the batched one are interchangeable, and the
 * load benchmark compares them through the same server.
 */

/** OIP (KServe v2) tensor datatypes graft serves. */
export type OipDatatype = 'BOOL' | 'UINT8' | 'INT8' | 'INT16' | 'INT32' | 'INT64' | 'FP16' | 'FP32' | 'FP64' | 'BYTES';

/** A numeric tensor handed to a runner or returned by one: row-major data with its shape; dim 0 is the batch. */
export interface HostTensor {
  datatype: Exclude<OipDatatype, 'BYTES'>;
  shape: number[];
  data: Float32Array | Float64Array | Int32Array | BigInt64Array | Uint8Array | Int8Array | Int16Array | Uint16Array;
}

/** One model input or output as the model declares it (for `/v2/models/{m}` metadata); -1 marks a dynamic dim. */
export interface TensorSpec {
  name: string;
  datatype: OipDatatype;
  shape: number[];
}

/** What a runner serves, read from the ONNX model once at load. */
export interface RunnerInfo {
  inputs: TensorSpec[];
  outputs: TensorSpec[];
  /** Largest batch one session.run takes: the model's fixed batch, or the configured cap for a dynamic one. */
  maxBatchSize: number;
}

/** Runs inference for one model version. Implementations: direct (one session.run per request) and batched. */
export interface ModelRunner {
  readonly info: RunnerInfo;
  /**
   * Runs one request. Every input's dim 0 is the request's batch (the same for all inputs); the result holds the
   * requested outputs (all when `outputs` is omitted) for that request's rows only.
   * @throws {QueueFullError} when the bounded queue is full (the HTTP layer answers 503 with Retry-After).
   */
  infer(inputs: Record<string, HostTensor>, outputs?: readonly string[]): Promise<Record<string, HostTensor>>;
  /** Stops taking requests and resolves when every accepted one has finished (graceful shutdown, hot reload). */
  drain(): Promise<void>;
}

/** Options for opening a runner on one model file. */
export interface RunnerOptions {
  /** Cap on rows per session.run for a model with a dynamic batch dimension (default 32). */
  maxBatchSize?: number;
  /** How long the batcher waits for more requests before running a partial batch, in ms (default 2). */
  maxQueueDelayMs?: number;
  /** Requests waiting at most; one more is refused with {@link QueueFullError} (default 256). */
  maxQueue?: number;
  /** onnxruntime intra-op threads per session (default: graft's default thread count). */
  threads?: number;
  /**
   * Inputs whose dim 1 is a length that varies per request (a text model's token ids), with the value they are
   * right-padded with: the batched runner batches requests of different lengths together, padding each to the
   * batch's longest (padding a text model's ids with its pad id leaves its outputs unchanged).
   */
  padInputs?: Record<string, number>;
  /** Model name and version, for metrics labels and error messages. */
  model: string;
  version: string;
  metrics?: ServeMetrics;
}

/** Opens a runner on an .onnx file. */
export type OpenRunner = (file: string, opts: RunnerOptions) => Promise<ModelRunner>;

/** Thrown by {@link ModelRunner.infer} when the queue is full: the server answers 503 with this Retry-After. */
export class QueueFullError extends Error {
  constructor(
    readonly model: string,
    readonly retryAfterS: number,
  ) {
    super(`model "${model}" is busy: its request queue is full. Retry after ${retryAfterS} s, or raise --max-queue.`);
    this.name = 'QueueFullError';
  }
}

/**
 * The server's Prometheus metrics (Triton's names under a `graft_` prefix). The HTTP layer reports requests;
 * runners report inferences (rows), executions (session.run calls) and queue/compute time.
 */
export interface ServeMetrics {
  request(model: string, version: string, ok: boolean, seconds: number): void;
  execution(model: string, version: string, rows: number, requests: number, queueSeconds: number[], computeSeconds: number): void;
  /** The exposition text for GET /metrics, with its content type. */
  render(): Promise<{ contentType: string; body: string }>;
}
