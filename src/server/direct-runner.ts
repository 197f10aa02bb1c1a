/**
 * The naive {@link ModelRunner}: one `session.run` per request (per chunk of at most `maxBatchSize` rows), no
 * batching across requests, on one onnxruntime session in the server's thread. It is the default until the
 * batched runner lands, and the load benchmark's baseline, so it does nothing clever: requests run as they come,
 * concurrently on the one session (onnxruntime allows that), bounded only by `maxQueue` requests in flight.
 */
import type { Dim, ValueInfo } from '../ir/graph.js';
import { loadModel } from '../onnx/io.js';
import { runChecked } from '../runtime/feeds.js';
import { createSession, ort } from '../runtime/session.js';
import type { DType } from '../tensor.js';
import {
  type HostTensor,
  type ModelRunner,
  type OipDatatype,
  type OpenRunner,
  QueueFullError,
  type RunnerInfo,
  type RunnerOptions,
  type TensorSpec,
} from './contract.js';

/** graft's dtype → OIP datatype. */
const OIP_OF: Record<DType, OipDatatype> = {
  float32: 'FP32',
  float64: 'FP64',
  float16: 'FP16',
  int64: 'INT64',
  int32: 'INT32',
  int16: 'INT16',
  int8: 'INT8',
  uint8: 'UINT8',
  uint16: 'FP16', // never declared by a model input; ort hands float16 data as Uint16Array
  bool: 'BOOL',
};

/** OIP datatype → onnxruntime tensor type. */
export const ORT_OF: Record<Exclude<OipDatatype, 'BYTES'>, ort.Tensor.Type> = {
  BOOL: 'bool',
  UINT8: 'uint8',
  INT8: 'int8',
  INT16: 'int16',
  INT32: 'int32',
  INT64: 'int64',
  FP16: 'float16',
  FP32: 'float32',
  FP64: 'float64',
};

const OIP_OF_ORT: Partial<Record<string, Exclude<OipDatatype, 'BYTES'>>> = Object.fromEntries(
  Object.entries(ORT_OF).map(([k, v]) => [v, k as Exclude<OipDatatype, 'BYTES'>]),
);

/** A model value as an OIP tensor spec: symbolic and unknown dims become -1. */
export function tensorSpec(v: ValueInfo): TensorSpec {
  return { name: v.name, datatype: OIP_OF[v.dtype], shape: (v.shape ?? []).map((d: Dim) => (typeof d === 'number' && d >= 0 ? d : -1)) };
}

/** What a runner serves for `model`'s graph: its fed inputs, its outputs, and the rows one run takes. */
export function runnerInfo(inputs: readonly ValueInfo[], outputs: readonly ValueInfo[], maxBatchSize = 32): RunnerInfo {
  const ins = inputs.map(tensorSpec);
  const fixed = ins[0]?.shape[0];
  return { inputs: ins, outputs: outputs.map(tensorSpec), maxBatchSize: fixed !== undefined && fixed > 0 ? fixed : Math.max(1, maxBatchSize) };
}

/** Opens a {@link DirectRunner} on an .onnx file. */
export const openDirectRunner: OpenRunner = async (file, opts) => {
  const model = loadModel(file);
  const g = model.graph;
  const info = runnerInfo(
    g.inputs.filter((v) => !g.initializers.has(v.name)),
    g.outputs,
    opts.maxBatchSize,
  );
  const session = await createSession(model, { threads: opts.threads });
  return new DirectRunner(session, info, opts);
};

/** One session, one run per request chunk; see the module comment. */
export class DirectRunner implements ModelRunner {
  private inFlight = 0;
  private draining = false;
  private idle: (() => void)[] = [];
  private released = false;

  constructor(
    private readonly session: ort.InferenceSession,
    readonly info: RunnerInfo,
    private readonly opts: RunnerOptions,
  ) {}

  async infer(inputs: Record<string, HostTensor>, outputs?: readonly string[]): Promise<Record<string, HostTensor>> {
    if (this.draining)
      throw new Error(`model "${this.opts.model}" version ${this.opts.version} is shutting down (draining); retry, and the newest version answers.`);
    if (this.inFlight >= (this.opts.maxQueue ?? 256)) throw new QueueFullError(this.opts.model, 1);
    this.inFlight++;
    try {
      const rows = Object.values(inputs)[0]?.shape[0] ?? 0;
      const fetch = outputs ?? this.info.outputs.map((o) => o.name);
      const step = this.info.maxBatchSize;
      const fixed = (this.info.inputs[0]?.shape[0] ?? -1) > 0;
      const parts: Record<string, HostTensor>[] = [];
      let compute = 0;
      for (let r0 = 0; r0 < rows || (rows === 0 && r0 === 0); r0 += step) {
        const n = Math.min(step, rows - r0);
        const feeds: Record<string, ort.Tensor> = {};
        for (const [name, t] of Object.entries(inputs)) feeds[name] = sliceRows(t, r0, n, fixed ? step : n);
        const t0 = performance.now();
        const out = await runChecked(this.session, feeds, fetch, { what: `a request to model "${this.opts.model}"` });
        compute += (performance.now() - t0) / 1000;
        parts.push(Object.fromEntries(Object.entries(out).map(([k, v]) => [k, hostRows(v, k, n, fixed ? step : n)])));
        if (rows === 0) break;
      }
      // no queue: a request runs as soon as it arrives
      this.opts.metrics?.execution(this.opts.model, this.opts.version, rows, 1, [0], compute);
      return parts.length === 1 ? parts[0]! : concatRows(parts);
    } finally {
      this.inFlight--;
      if (this.inFlight === 0) for (const f of this.idle.splice(0)) f();
    }
  }

  async drain(): Promise<void> {
    this.draining = true;
    if (this.inFlight > 0) await new Promise<void>((resolve) => this.idle.push(resolve));
    if (!this.released) {
      this.released = true;
      await this.session.release();
    }
  }
}

/** Rows [r0, r0+n) of `t` as an ort.Tensor, zero-padded to `rows` rows (a model with a fixed batch). */
function sliceRows(t: HostTensor, r0: number, n: number, rows: number): ort.Tensor {
  const per = t.shape.slice(1).reduce((a, b) => a * b, 1);
  let data = t.data.subarray(r0 * per, (r0 + n) * per);
  if (rows > n) {
    const padded = new (t.data.constructor as new (n: number) => typeof t.data)(rows * per);
    padded.set(data as never);
    data = padded;
  }
  return new ort.Tensor(ORT_OF[t.datatype], data as never, [rows, ...t.shape.slice(1)]);
}

/** The first `n` rows of an output as a HostTensor (a padded run returns more). */
function hostRows(v: ort.Tensor, name: string, n: number, rows: number): HostTensor {
  const datatype = OIP_OF_ORT[v.type];
  if (!datatype) throw new Error(`output "${name}" has type ${v.type}, which graft serve cannot return; export the model with numeric outputs.`);
  const dims = [...v.dims].map(Number);
  const data = v.data as HostTensor['data'];
  if (rows === n || dims[0] !== rows) return { datatype, shape: dims, data };
  const per = data.length / rows;
  return { datatype, shape: [n, ...dims.slice(1)], data: data.subarray(0, n * per) as HostTensor['data'] };
}

/** Concatenates per-chunk outputs along dim 0. */
function concatRows(parts: Record<string, HostTensor>[]): Record<string, HostTensor> {
  const out: Record<string, HostTensor> = {};
  for (const name of Object.keys(parts[0]!)) {
    const ts = parts.map((p) => p[name]!);
    const total = ts.reduce((a, t) => a + t.data.length, 0);
    const data = new (ts[0]!.data.constructor as new (n: number) => HostTensor['data'])(total);
    let o = 0;
    for (const t of ts) {
      data.set(t.data as never, o);
      o += t.data.length;
    }
    out[name] = { datatype: ts[0]!.datatype, shape: [ts.reduce((a, t) => a + (t.shape[0] ?? 0), 0), ...ts[0]!.shape.slice(1)], data };
  }
  return out;
}
