/**
 * TensorFlow.js weight files: the `weightsManifest` of a model.json (groups of shard files holding weights
 * back to back), shard size checks, and dequantization (uint8/uint16 affine, float16) into float32 host tensors.
 */
import { Tensor } from '../tensor.js';

/** Quantization of one weight, as written by the tensorflowjs converter. */
export interface TfjsQuantization {
  dtype: 'uint8' | 'uint16' | 'float16';
  /** value = q · scale + min (tfjs's affine scheme). */
  scale?: number;
  min?: number;
  /** Accepted as an alias of `min` (value = q · scale + offset). */
  offset?: number;
}

/** One entry of a weights manifest group. */
export interface TfjsWeightSpec {
  name: string;
  shape: number[];
  dtype: 'float32' | 'int32' | 'bool' | 'string' | 'complex64';
  quantization?: TfjsQuantization;
  group?: string;
}

/** One group of a weights manifest: shard file names (relative to model.json) and the weights they hold in order. */
export interface TfjsWeightGroup {
  paths: string[];
  weights: TfjsWeightSpec[];
}

/** Reads one shard (path as written in the manifest). Returns its bytes; throws naming the file if it is missing. */
export type ShardReader = (shardPath: string) => Uint8Array;

const BYTES: Record<string, number> = { float32: 4, int32: 4, bool: 1, uint8: 1, uint16: 2, float16: 2 };

/** Bytes one weight occupies in its shard (its quantized size when quantized). */
export function specBytes(spec: TfjsWeightSpec, where: string): number {
  const dtype = spec.quantization?.dtype ?? spec.dtype;
  const per = BYTES[dtype];
  if (per === undefined)
    throw new Error(
      `${where}: weight "${spec.name}" has dtype "${dtype}", which graft cannot read (it reads float32, int32, bool and uint8/uint16/float16-quantized weights). Re-export the model without it.`,
    );
  return per * spec.shape.reduce((a, b) => a * b, 1);
}

/**
 * Reads every group of a manifest through `read` and decodes all weights.
 * @param where the model file, for error messages.
 * @returns weight name → tensor (float32, or int32/bool for such weights), in the manifest's (Keras) layout.
 * @throws when a shard is missing, when the shards of a group hold a different number of bytes than the
 *   manifest's weights need (naming the files and their sizes), or when a weight's quantization is malformed.
 */
export function readWeights(manifest: TfjsWeightGroup[], read: ShardReader, where: string): Map<string, Tensor> {
  const out = new Map<string, Tensor>();
  manifest.forEach((group, gi) => {
    const shards = group.paths.map((p) => ({ path: p, bytes: read(p) }));
    const total = shards.reduce((a, s) => a + s.bytes.length, 0);
    const need = group.weights.reduce((a, w) => a + specBytes(w, where), 0);
    if (total !== need) throw new Error(sizeMismatch(where, gi, shards, total, need));
    const all = concat(shards.map((s) => s.bytes));
    let at = 0;
    for (const spec of group.weights) {
      const n = specBytes(spec, where);
      out.set(spec.name, decodeWeight(spec, all.subarray(at, at + n), where));
      at += n;
    }
  });
  return out;
}

/** Decodes one weight from its bytes (dequantizing uint8/uint16/float16 to float32). */
export function decodeWeight(spec: TfjsWeightSpec, bytes: Uint8Array, where: string): Tensor {
  const dims = [...spec.shape];
  const n = dims.reduce((a, b) => a * b, 1);
  const q = spec.quantization;
  const aligned = new Uint8Array(bytes).buffer; // copy: shards are not 4-byte aligned in general
  if (!q) {
    if (spec.dtype === 'float32') return new Tensor('float32', dims, new Float32Array(aligned, 0, n));
    if (spec.dtype === 'int32') return new Tensor('int32', dims, new Int32Array(aligned, 0, n));
    if (spec.dtype === 'bool') return new Tensor('bool', dims, new Uint8Array(aligned, 0, n));
    throw new Error(`${where}: weight "${spec.name}" has dtype "${spec.dtype}", which graft cannot import. Re-export the model without it.`);
  }
  if (q.dtype === 'float16') {
    if (spec.dtype !== 'float32')
      throw new Error(
        `${where}: weight "${spec.name}" is float16-quantized but declared ${spec.dtype}; tfjs only allows float16 for float32 weights. Fix the manifest.`,
      );
    return new Tensor('float32', dims, halfToFloat(new Uint16Array(aligned, 0, n)));
  }
  if (q.dtype !== 'uint8' && q.dtype !== 'uint16')
    throw new Error(
      `${where}: weight "${spec.name}" has quantization dtype "${(q as { dtype: string }).dtype}"; tfjs defines uint8, uint16 and float16. Re-export with one of those.`,
    );
  const min = q.min ?? q.offset;
  if (typeof q.scale !== 'number' || typeof min !== 'number')
    throw new Error(
      `${where}: weight "${spec.name}" is ${q.dtype}-quantized but its quantization lacks "scale" and "min" (value = q·scale + min). Fix the manifest or re-export the model.`,
    );
  const src = q.dtype === 'uint8' ? new Uint8Array(aligned, 0, n) : new Uint16Array(aligned, 0, n);
  if (spec.dtype === 'int32') {
    const v = new Int32Array(n);
    for (let i = 0; i < n; i++) v[i] = Math.round(src[i]! * q.scale + min);
    return new Tensor('int32', dims, v);
  }
  const v = new Float32Array(n);
  for (let i = 0; i < n; i++) v[i] = src[i]! * q.scale + min;
  return new Tensor('float32', dims, v);
}

/** IEEE 754 half-precision bits → float32 values. */
export function halfToFloat(h: Uint16Array): Float32Array {
  const out = new Float32Array(h.length);
  for (let i = 0; i < h.length; i++) {
    const x = h[i]!;
    const sign = x & 0x8000 ? -1 : 1;
    const exp = (x >> 10) & 0x1f;
    const frac = x & 0x3ff;
    if (exp === 0) out[i] = sign * 2 ** -14 * (frac / 1024);
    else if (exp === 31) out[i] = frac ? Number.NaN : sign * Number.POSITIVE_INFINITY;
    else out[i] = sign * 2 ** (exp - 15) * (1 + frac / 1024);
  }
  return out;
}

function concat(parts: Uint8Array[]): Uint8Array {
  if (parts.length === 1) return parts[0]!;
  const out = new Uint8Array(parts.reduce((a, p) => a + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/** Names the shard most likely at fault: the converter writes equal-sized shards and a shorter last one. */
function sizeMismatch(where: string, gi: number, shards: { path: string; bytes: Uint8Array }[], total: number, need: number): string {
  const sizes = shards.map((s) => `${s.path} (${s.bytes.length} bytes)`).join(', ');
  const full = shards.length > 1 ? Math.max(...shards.slice(0, -1).map((s) => s.bytes.length)) : 0;
  const odd = shards.find((s, i) => i < shards.length - 1 && s.bytes.length !== full) ?? shards[shards.length - 1]!;
  return (
    `${where}: weight group ${gi + 1} needs ${need} bytes for its ${shards.length === 1 ? 'shard' : 'shards'} but ${sizes} hold ${total} ` +
    `(${total < need ? `${need - total} missing` : `${total - need} extra`}); ${odd.path} is probably truncated or from another model. ` +
    'Re-download or re-export the shards together with model.json.'
  );
}
