/** Conversion between ONNX TensorProto and graft's host Tensor, including external data (reading and writing). */
import fs from 'node:fs';
import onnxProto from 'onnx-proto';
import { allocate, type DType, Tensor, type TypedArray } from '../tensor.js';
import { writeAll } from '../util/atomic-write.js';
import { describeFsError } from '../util/fs-errors.js';
import { resolveInsideFolder } from '../util/safe-path.js';

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
const BYTES: Record<DType, number> = { float32: 4, float64: 8, float16: 2, int64: 8, int32: 4, int16: 2, int8: 1, uint8: 1, uint16: 2, bool: 1 };
/** Largest element count graft will allocate for one tensor (typed arrays are limited to 2^31 elements on some platforms). */
const MAX_ELEMENTS = 2 ** 31 - 1;

/** ONNX TensorProto.DataType code for a graft dtype. */
export function dtypeToOnnx(d: DType): number {
  return toOnnx[d];
}

/** graft dtype for an ONNX TensorProto.DataType code; throws naming `where` if graft cannot hold it. */
export function dtypeFromOnnx(code: number, where: string): DType {
  const d = fromOnnx.get(code);
  if (!d) {
    const name = (DT as unknown as Record<number, string>)[code] ?? `code ${code}`;
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

/** Decodes a TensorProto into a Tensor (raw_data, typed fields, or external data). Sizes are checked before anything is allocated. */
export function tensorFromProto(t: TP | null | undefined, opts: ExternalDataOptions = {}, what = 'initializer'): Tensor {
  const name = t?.name || '(unnamed)';
  const where = `${opts.modelPath ?? 'model'}: ${what} "${name}"`;
  if (!t) throw new Error(`${where} is missing its tensor; the file is corrupt. Re-export it.`);
  const dtype = dtypeFromOnnx(t.dataType ?? 0, where);
  const dims = (t.dims ?? []).map(num);
  let n = 1;
  for (const d of dims) {
    if (!Number.isSafeInteger(d) || d < 0) throw new Error(`${where} has an invalid dimension ${d} in [${dims}]; the file is corrupt. Re-export it.`);
    n *= d;
  }
  if (n > MAX_ELEMENTS)
    throw new Error(`${where} has ${n} elements (dims [${dims}]), more than graft can hold in one tensor; the file is corrupt or the tensor must be split.`);
  const need = n * BYTES[dtype];
  let bytes: Uint8Array | undefined;
  if (t.dataLocation === onnx.TensorProto.DataLocation.EXTERNAL) bytes = readExternal(t, need, where, opts);
  else if (t.rawData?.length) bytes = t.rawData;
  if (bytes) {
    if (bytes.length !== need)
      throw new Error(`${where} holds ${bytes.length} bytes but dims [${dims}] of ${dtype} need ${need}. The file is truncated or corrupt; re-export it.`);
    const out = allocate(dtype, n);
    new Uint8Array(out.buffer, out.byteOffset, need).set(bytes);
    return new Tensor(dtype, dims, out);
  }
  const src = typedField(t, dtype);
  if (src.length !== n)
    throw new Error(
      `${where} holds ${src.length} values but dims [${dims}] need ${n}. The file is truncated or corrupt (or the exporter dropped the weights); re-export it.`,
    );
  const out = allocate(dtype, n);
  if (dtype === 'int64') for (let i = 0; i < n; i++) (out as BigInt64Array)[i] = BigInt(num(src[i]));
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
    default: // int32, int16, int8, uint8, uint16, bool and float16 (as bits) live in int32_data
      return t.int32Data ?? [];
  }
}

/**
 * Resolves an external-data location against the model folder; refuses absolute paths and paths that leave the
 * folder, lexically or through a symbolic link (see {@link resolveInsideFolder}). Returns the file's real path.
 */
export function resolveExternalPath(loc: string, where: string, baseDir = '.'): string {
  return resolveInsideFolder(baseDir, loc, {
    what: `${where}: external data path`,
    fix: 'Put the weight file beside the model (a copy, not a symbolic link) and point "location" at its bare name.',
  });
}

function readExternal(t: TP, expectBytes: number, where: string, opts: ExternalDataOptions): Uint8Array {
  const kv = new Map((t.externalData ?? []).map((e) => [e.key, e.value]));
  const loc = kv.get('location');
  if (!loc) throw new Error(`${where} is marked external but names no location. Re-export the model with its weights.`);
  const file = resolveExternalPath(loc, where, opts.baseDir);
  const offset = kv.has('offset') ? Number(kv.get('offset')) : 0;
  const length = kv.has('length') ? Number(kv.get('length')) : expectBytes;
  if (!Number.isSafeInteger(offset) || offset < 0 || !Number.isSafeInteger(length) || length < 0)
    throw new Error(
      `${where}: external data offset "${kv.get('offset')}" / length "${kv.get('length')}" are not valid byte counts; the model is corrupt. Re-export it.`,
    );
  if (length !== expectBytes)
    throw new Error(
      `${where}: external data length is ${length} bytes but the tensor needs ${expectBytes}; the model and ${loc} do not match. Re-export them together.`,
    );
  let fd: number;
  try {
    fd = fs.openSync(file, 'r');
  } catch (e) {
    throw new Error(`${where}: ${describeFsError('open external data file', file, e)} The weight file must sit beside the model.`);
  }
  try {
    const size = fs.fstatSync(fd).size;
    if (offset + length > size)
      throw new Error(
        `${where}: external data file ${file} is truncated (${size} bytes; the tensor needs bytes ${offset}–${offset + length}). Copy or download it again, or re-export the model.`,
      );
    const buf = Buffer.alloc(length);
    let got = 0;
    while (got < length) {
      const r = fs.readSync(fd, buf, got, length - got, offset + got);
      if (r <= 0) break;
      got += r;
    }
    if (got !== length)
      throw new Error(`${where}: external data file ${file} ended early (read ${got} of ${length} bytes at offset ${offset}). Re-export the model.`);
    return buf;
  } finally {
    fs.closeSync(fd);
  }
}

/** Where {@link tensorToProto} appends external tensor data. */
export interface ExternalSink {
  /** Open file descriptor of the (temporary) data file. */
  fd: number;
  /** Location written into the model (the data file's final bare name). */
  location: string;
  /** Next free byte in the data file. */
  offset: number;
  /** Tensors of at least this many bytes go external (default 1024). */
  threshold?: number;
}

const ALIGN_THRESHOLD = 1 << 20;
const ALIGNMENT = 1 << 16;

/** Encodes a Tensor as TensorProto (raw_data), or as external data written to `sink` (tensors ≥ 1 MiB start at 64 KiB boundaries, for mmap). */
export function tensorToProto(name: string, t: Tensor, sink?: ExternalSink): TP {
  const bytes = new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength);
  const proto = onnx.TensorProto.create({ name, dims: [...t.dims], dataType: dtypeToOnnx(t.dtype) });
  if (sink && bytes.length >= (sink.threshold ?? 1024)) {
    if (bytes.length >= ALIGN_THRESHOLD) sink.offset = Math.ceil(sink.offset / ALIGNMENT) * ALIGNMENT;
    writeAll(fs, sink.fd, bytes, sink.offset);
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
