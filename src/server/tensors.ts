/**
 * Serving's tensor plumbing, shared by the runners: OIP datatypes ↔ onnxruntime types, a model's {@link RunnerInfo}
 * from onnxruntime's metadata, and the one check of a request's tensors against it (before a request joins a batch,
 * so a bad one fails alone).
 */
import type * as ort from 'onnxruntime-node';
import { checkFeeds, FeedError, type InputSpec } from '../runtime/feeds.js';
import type { HostTensor, OipDatatype, RunnerInfo, TensorSpec } from './contract.js';

type NumericDatatype = HostTensor['datatype'];

const ORT_OF_OIP: Record<OipDatatype, string> = {
  BOOL: 'bool',
  UINT8: 'uint8',
  INT8: 'int8',
  INT16: 'int16',
  INT32: 'int32',
  INT64: 'int64',
  FP16: 'float16',
  FP32: 'float32',
  FP64: 'float64',
  BYTES: 'string',
};
const OIP_OF_ORT: Record<string, OipDatatype> = Object.fromEntries(Object.entries(ORT_OF_OIP).map(([k, v]) => [v, k as OipDatatype]));

/** The typed array each numeric datatype travels in. */
const ARRAY_OF: Record<NumericDatatype, new (n: number) => HostTensor['data']> = {
  BOOL: Uint8Array,
  UINT8: Uint8Array,
  INT8: Int8Array,
  INT16: Int16Array,
  INT32: Int32Array,
  INT64: BigInt64Array,
  FP16: Uint16Array,
  FP32: Float32Array,
  FP64: Float64Array,
};

/** onnxruntime's tensor type for an OIP datatype ('FP32' → 'float32'). */
export function ortTypeOf(datatype: OipDatatype): string {
  return ORT_OF_OIP[datatype];
}

/** The OIP datatype of an onnxruntime tensor type ('float32' → 'FP32'); throws for a type OIP cannot carry. */
export function oipDatatypeOf(ortType: string, where: string): OipDatatype {
  const d = OIP_OF_ORT[ortType];
  if (!d) throw new Error(`${where} has onnxruntime type ${ortType}, which graft serve cannot carry; re-export the model with a numeric type.`);
  return d;
}

/** A zero-filled typed array of `n` elements for `datatype`. */
export function allocate(datatype: NumericDatatype, n: number): HostTensor['data'] {
  return new ARRAY_OF[datatype](n);
}

/** Elements per row (dims after the first) of a shape. */
export function rowSize(shape: readonly number[]): number {
  let n = 1;
  for (let i = 1; i < shape.length; i++) n *= shape[i]!;
  return n;
}

/**
 * A model's {@link RunnerInfo} from onnxruntime's names and metadata (structured-cloneable, so a worker can send
 * them). The batch is dim 0 of every input: a fixed size there is the model's batch (requests are padded up to
 * it); a symbolic or unknown one takes up to `maxBatchSize` rows (default 32).
 * @throws when an input has no batch dim or two inputs disagree on a fixed batch size.
 */
export function runnerInfoOf(
  model: string,
  io: {
    inputNames: readonly string[];
    outputNames: readonly string[];
    inputMetadata?: readonly ort.InferenceSession.ValueMetadata[];
    outputMetadata?: readonly ort.InferenceSession.ValueMetadata[];
  },
  maxBatchSize = 32,
): RunnerInfo {
  if (!(Number.isInteger(maxBatchSize) && maxBatchSize > 0))
    throw new Error(`maxBatchSize must be a positive integer (e.g. --max-batch-size 32), got ${maxBatchSize}.`);
  const spec = (name: string, meta: readonly ort.InferenceSession.ValueMetadata[] | undefined, kind: string): TensorSpec => {
    const m = meta?.find((v) => v.name === name);
    if (!m?.isTensor) return { name, datatype: 'FP32', shape: [] };
    const shape = m.shape.map((d) => (typeof d === 'number' && d >= 0 ? d : -1));
    return { name, datatype: oipDatatypeOf(m.type, `model "${model}" ${kind} "${name}"`), shape };
  };
  const inputs = io.inputNames.map((n) => spec(n, io.inputMetadata, 'input'));
  const outputs = io.outputNames.map((n) => spec(n, io.outputMetadata, 'output'));
  const fixed = new Set<number>();
  for (const t of inputs) {
    const m = io.inputMetadata?.find((v) => v.name === t.name);
    if (m?.isTensor && m.shape.length === 0)
      throw new Error(`model "${model}" input "${t.name}" has no batch dimension (it is a scalar); graft serve needs dim 0 of every input to be the batch.`);
    if (t.shape.length && t.shape[0]! > 0) fixed.add(t.shape[0]!);
  }
  if (fixed.size > 1)
    throw new Error(
      `model "${model}" has inputs with different fixed batch sizes (${[...fixed].join(', ')}); graft serve needs one batch dim 0 shared by every input. Re-export it with a dynamic batch.`,
    );
  return { inputs, outputs, maxBatchSize: fixed.size ? [...fixed][0]! : maxBatchSize };
}

/** Whether the model's batch is fixed (padded up to `info.maxBatchSize`) rather than dynamic. */
export function hasFixedBatch(info: RunnerInfo): boolean {
  return info.inputs.some((t) => t.shape.length > 0 && t.shape[0]! > 0);
}

/**
 * Checks one request against the model and returns its batch (rows): every input present and none unknown, each
 * with the model's datatype (in its typed array), rank and fixed dims, data of the shape's length, one batch size
 * across inputs within `info.maxBatchSize`, and requested outputs the model has.
 * @throws FeedError naming the model, the input and the fix.
 */
export function checkRequest(model: string, info: RunnerInfo, inputs: Record<string, HostTensor>, outputs?: readonly string[]): number {
  const what = `the request to model "${model}"`;
  const specs: InputSpec[] = info.inputs.map((t) => ({
    name: t.name,
    type: ortTypeOf(t.datatype),
    ...(t.shape.length ? { shape: t.shape.map((d, i) => (i === 0 ? -1 : d)) } : {}),
  }));
  const feeds: Record<string, { type: string; dims: readonly number[] }> = {};
  for (const [name, t] of Object.entries(inputs)) feeds[name] = { type: ORT_OF_OIP[t.datatype] ?? t.datatype, dims: t.shape };
  checkFeeds(specs, feeds, { what, fix: 'Send the tensor with the shape the model metadata (GET /v2/models/{name}) lists; -1 takes any size.' });
  let rows: number | undefined;
  for (const [name, t] of Object.entries(inputs)) {
    if (!(t.data instanceof ARRAY_OF[t.datatype]))
      throw new FeedError(`Input "${name}" of ${what} is ${t.datatype} but its data is a ${t.data.constructor.name}; pass a ${ARRAY_OF[t.datatype].name}.`);
    const n = t.shape.reduce((a, b) => a * b, 1);
    if (t.data.length !== n)
      throw new FeedError(
        `Input "${name}" of ${what} has shape [${t.shape.join(', ')}] (${n} values) but ${t.data.length} values; send exactly one value per element.`,
      );
    if (!t.shape.length) throw new FeedError(`Input "${name}" of ${what} is a scalar; graft serve needs dim 0 to be the batch, e.g. shape [1].`);
    const b = t.shape[0]!;
    if (rows !== undefined && b !== rows)
      throw new FeedError(`The inputs of ${what} disagree on the batch (dim 0): ${rows} and ${b} ("${name}"); send the same number of rows for every input.`);
    rows = b;
  }
  if (rows === undefined || rows < 1) throw new FeedError(`${what} has an empty batch (dim 0 is 0); send at least one row.`);
  if (rows > info.maxBatchSize)
    throw new FeedError(
      `${what} has ${rows} rows, more than the model's batch of ${info.maxBatchSize}; split it into requests of at most ${info.maxBatchSize} rows${hasFixedBatch(info) ? '' : ' (or raise --max-batch-size)'}.`,
    );
  if (outputs) {
    const known = new Set(info.outputs.map((t) => t.name));
    const bad = outputs.filter((o) => !known.has(o));
    if (bad.length)
      throw new FeedError(
        `${what} asks for output ${bad.map((o) => `"${o}"`).join(', ')}, which the model does not have; its outputs are ${info.outputs.map((t) => `"${t.name}"`).join(', ')}.`,
      );
  }
  return rows;
}
