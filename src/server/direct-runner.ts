/**
 * The naive {@link ModelRunner}: one `session.run` per request, no batching across requests, on one onnxruntime
 * session in the server's own thread. It is the load benchmark's baseline for the batched runner, so it does
 * nothing clever: a request is checked as the batched runner checks it ({@link checkRequest}: at most
 * `maxBatchSize` rows), padded to a fixed batch if the model has one, and run as soon as it arrives; at most
 * `maxQueue` requests are in flight, one more gets {@link QueueFullError}.
 */
import { loadModel } from '../onnx/io.js';
import { runChecked } from '../runtime/feeds.js';
import { createSession, ort } from '../runtime/session.js';
import { ExecutorUnavailableError } from './batcher.js';
import { type HostTensor, type ModelRunner, type OpenRunner, QueueFullError, type RunnerInfo, type RunnerOptions } from './contract.js';
import { allocate, checkRequest, hasFixedBatch, oipDatatypeOf, ortTypeOf, rowSize, runnerInfoOf } from './tensors.js';

/** Opens a {@link DirectRunner} on an .onnx file (read with graft's loader: external data, clear errors). */
export const openDirectRunner: OpenRunner = async (file, opts) => {
  const session = await createSession(loadModel(file), { threads: opts.threads });
  try {
    return new DirectRunner(session, runnerInfoOf(opts.model, session, opts.maxBatchSize), opts);
  } catch (e) {
    await session.release();
    throw e;
  }
};

/** One session, one run per request; see the module comment. */
export class DirectRunner implements ModelRunner {
  private inFlight = 0;
  private draining?: Promise<void>;
  private idle?: () => void;

  constructor(
    private readonly session: ort.InferenceSession,
    readonly info: RunnerInfo,
    private readonly opts: RunnerOptions,
  ) {}

  async infer(inputs: Record<string, HostTensor>, outputs?: readonly string[]): Promise<Record<string, HostTensor>> {
    if (this.draining)
      throw new ExecutorUnavailableError(`model "${this.opts.model}" is shutting down or reloading and takes no more requests; retry in a moment.`);
    const rows = checkRequest(this.opts.model, this.info, inputs, outputs);
    if (this.inFlight >= (this.opts.maxQueue ?? 256)) throw new QueueFullError(this.opts.model, 1);
    this.inFlight++;
    try {
      const batch = hasFixedBatch(this.info) ? this.info.maxBatchSize : rows;
      const feeds: Record<string, ort.Tensor> = {};
      for (const [name, t] of Object.entries(inputs)) {
        let data = t.data;
        if (batch > rows) {
          data = allocate(t.datatype, batch * rowSize(t.shape));
          data.set(t.data as never);
        }
        feeds[name] = new ort.Tensor(ortTypeOf(t.datatype) as ort.Tensor.Type, data as never, [batch, ...t.shape.slice(1)]);
      }
      const fetch = outputs ?? this.info.outputs.map((o) => o.name);
      const t0 = performance.now();
      const out = await runChecked(this.session, feeds, fetch, { what: `the request to model "${this.opts.model}"` });
      // no queue: a request runs as soon as it arrives
      this.opts.metrics?.execution(this.opts.model, this.opts.version, rows, 1, [0], (performance.now() - t0) / 1000);
      const result: Record<string, HostTensor> = {};
      for (const name of fetch) {
        const v = out[name]!;
        const dims = v.dims.map(Number);
        const datatype = oipDatatypeOf(v.type, `model "${this.opts.model}" output "${name}"`);
        if (datatype === 'BYTES') throw new Error(`model "${this.opts.model}" output "${name}" is a string tensor, which graft serve cannot return.`);
        const data = v.data as HostTensor['data'];
        result[name] =
          batch > rows && dims[0] === batch
            ? { datatype, shape: [rows, ...dims.slice(1)], data: data.subarray(0, rows * rowSize(dims)) as HostTensor['data'] }
            : { datatype, shape: dims, data };
      }
      return result;
    } finally {
      this.inFlight--;
      if (this.inFlight === 0) this.idle?.();
    }
  }

  drain(): Promise<void> {
    this.draining ??= (async () => {
      if (this.inFlight > 0) await new Promise<void>((resolve) => (this.idle = resolve));
      await this.session.release();
    })();
    return this.draining;
  }
}
