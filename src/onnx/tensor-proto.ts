/** Conversion between ONNX TensorProto and graft's host Tensor, including external data. */
import fs from 'node:fs';
import path from 'node:path';
import onnxProto from 'onnx-proto';
import { allocate, type DType, sizeOf, Tensor, type TypedArray } from '../tensor.js';

export const { onnx } = onnxProto;
type TP = onnxProto.onnx.ITensorProto;

const DT = onnx.TensorProto.DataType;
const toOnnx: Record<DType, number> = {
  float32: DT.FLOAT,
  float64: DT.DOUBLE,
  float16: DT.FLOAT16,
  int64: DT.INT64,
  int32: DT.INT32,
  int16: DT.INT16,
  int8: DT.INT8,
  uint8: DT.UINT8,
  uint16: DT.UINT16,
  bool: DT.BOOL,
};
const fromOnnx = new Map<number, DType>(Object.entries(toOnnx).map(([k, v]) => [v, k as DType]));

export function dtypeToOnnx(d: DType): number {
  return toOnnx[d];
}

export function dtypeFromOnnx(code: number, where: string): DType {
  const d = fromOnnx.get(code);
  if (!d) {
    const name = (DT as unknown as Record<number, string>)[code] ?? String(code);
    throw new Error(
      `${where}: element type ${name} is not supported by graft (supported: ${Object.keys(toOnnx).join(', ')}). Convert the model's tensors to float32.`,
    );
  }
  return d;
}

/** Converts protobuf Long/number to number. */
export function num(v: unknown): number {
  if (typeof v === 'number') return v;
  if (v && typeof v === 'object' && 'toNumber' in v) return (v as { toNumber(): number }).toNumber();
  return Number(v ?? 0);
}

/** Options for resolving external data. */
export interface ExternalDataOptions {
  /** Folder the model file lives in; external paths are resolved against it and may not escape it. */
  baseDir?: string;
  /** Used in error messages. */
  modelPath?: string;
}

/** Decodes a TensorProto into a Tensor (raw_data, typed fields, or external data). */
export function tensorFromProto(t: TP, opts: ExternalDataOptions = {}): Tensor {
  const name = t.name || '(unnamed tensor)';
  const where = `${opts.modelPath ?? 'model'}: initializer "${name}"`;
  const dtype = dtypeFromOnnx(t.dataType ?? 0, where);
  const dims = (t.dims ?? []).map(num);
  const n = sizeOf(dims);
  const out = allocate(dtype, n);
  const bpe = out.BYTES_PER_ELEMENT;
  let bytes: Uint8Array | undefined;
  if (t.dataLocation === onnx.TensorProto.DataLocation.EXTERNAL) {
    bytes = readExternal(t, n * bpe, where, opts);
  } else if (t.rawData?.length) {
    bytes = t.rawData;
  }
  if (bytes) {
    if (bytes.length !== n * bpe)
      throw new Error(`${where} holds ${bytes.length} bytes but dims [${dims}] of ${dtype} need ${n * bpe}. The file is truncated or corrupt; re-export it.`);
    new Uint8Array(out.buffer, out.byteOffset, n * bpe).set(bytes);
    return new Tensor(dtype, dims, out);
  }
  const src = typedField(t, dtype);
  if (src.length !== n) {
    if (n === 0 || src.length === 0) return new Tensor(dtype, dims, out);
    throw new Error(`${where} holds ${src.length} values but dims [${dims}] need ${n}. The file is corrupt; re-export it.`);
  }
  if (dtype === 'int64') for (let i = 0; i < n; i++) (out as BigInt64Array)[i] = BigInt(num(src[i]));
  else if (dtype === 'float16' || dtype === 'uint16') for (let i = 0; i < n; i++) (out as Uint16Array)[i] = num(src[i]);
  else for (let i = 0; i < n; i++) (out as Exclude<TypedArray, BigInt64Array>)[i] = num(src[i]);
  return new Tensor(dtype, dims, out);
}

function typedField(t: TP, dtype: DType): ArrayLike<unknown> {
  switch (dtype) {
    case 'float32':
      return t.floatData ?? [];
    case 'float64':
      return t.doubleData ?? [];
    case 'int64':
      return t.int64Data ?? [];
    default:
      return t.int32Data ?? [];
  }
}

function readExternal(t: TP, expectBytes: number, where: string, opts: ExternalDataOptions): Uint8Array {
  const kv = new Map((t.externalData ?? []).map((e) => [e.key, e.value]));
  const loc = kv.get('location');
  if (!loc) throw new Error(`${where} is marked external but names no location. Re-export the model with its weights.`);
  const base = path.resolve(opts.baseDir ?? '.');
  const file = path.resolve(base, loc);
  if (path.isAbsolute(loc) || !(file === base || file.startsWith(base + path.sep)))
    throw new Error(
      `${where}: external data path "${loc}" escapes the model's folder ${base}. Move the weight file beside the model and re-export; graft refuses paths outside the model folder.`,
    );
  const offset = kv.has('offset') ? Number(kv.get('offset')) : 0;
  const length = kv.has('length') ? Number(kv.get('length')) : expectBytes;
  let fd: number;
  try {
    fd = fs.openSync(file, 'r');
  } catch (e) {
    throw new Error(`${where}: cannot open external data file ${file} (${(e as Error).message}). Put the weight file beside the model.`);
  }
  try {
    const buf = Buffer.alloc(length);
    const got = fs.readSync(fd, buf, 0, length, offset);
    if (got !== length)
      throw new Error(`${where}: external data file ${file} is truncated (wanted ${length} bytes at offset ${offset}, got ${got}). Re-export the model.`);
    return buf;
  } finally {
    fs.closeSync(fd);
  }
}

/** Encodes a Tensor as TensorProto (raw_data), or as external data appended to `sink`. */
export function tensorToProto(name: string, t: Tensor, sink?: { file: string; location: string; fd: number; offset: number }): TP {
  const bytes = new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength);
  const proto = onnx.TensorProto.create({ name, dims: [...t.dims], dataType: dtypeToOnnx(t.dtype) });
  if (sink && bytes.length >= 1024) {
    fs.writeSync(sink.fd, bytes, 0, bytes.length, sink.offset);
    proto.dataLocation = onnx.TensorProto.DataLocation.EXTERNAL;
    proto.externalData = [
      { key: 'location', value: sink.location },
      { key: 'offset', value: String(sink.offset) },
      { key: 'length', value: String(bytes.length) },
    ];
    sink.offset += bytes.length;
  } else {
    proto.rawData = bytes;
  }
  return proto;
}
