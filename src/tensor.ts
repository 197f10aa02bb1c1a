/**
 * Host-side tensors: a dtype, dims and a typed array. This is the one tensor type the
 * engine passes around outside onnxruntime (initializers, feeds, checkpoints).
 */

/** Element types graft understands. `float32` is the training type; `int64` carries labels and shapes. */
export type DType = 'float32' | 'float64' | 'float16' | 'int64' | 'int32' | 'int16' | 'int8' | 'uint8' | 'uint16' | 'bool';

export type TypedArray = Float32Array | Float64Array | BigInt64Array | Int32Array | Int16Array | Int8Array | Uint8Array | Uint16Array;

/** A dense, row-major host tensor. */
export class Tensor {
  constructor(
    public readonly dtype: DType,
    public readonly dims: readonly number[],
    public readonly data: TypedArray,
  ) {
    const n = sizeOf(dims);
    if (data.length !== n) {
      throw new Error(`Tensor data has ${data.length} elements but dims [${dims.join(', ')}] need ${n}; pass data of the right length.`);
    }
  }

  get size(): number {
    return this.data.length;
  }

  /** A float32 tensor from numbers. */
  static f32(dims: readonly number[], values?: ArrayLike<number>): Tensor {
    const data = new Float32Array(sizeOf(dims));
    if (values) data.set(values);
    return new Tensor('float32', dims, data);
  }

  /** An int64 tensor from numbers. */
  static i64(dims: readonly number[], values: ArrayLike<number>): Tensor {
    const data = new BigInt64Array(values.length);
    for (let i = 0; i < values.length; i++) data[i] = BigInt(values[i]!);
    return new Tensor('int64', dims, data);
  }

  /** A float32 scalar (rank 0). */
  static scalar(v: number): Tensor {
    return Tensor.f32([], [v]);
  }

  /** The elements as plain numbers (int64 converted). */
  toNumbers(): number[] {
    return Array.from(this.data as ArrayLike<number | bigint>, (v) => Number(v));
  }

  clone(): Tensor {
    return new Tensor(this.dtype, [...this.dims], this.data.slice());
  }
}

export function sizeOf(dims: readonly number[]): number {
  let n = 1;
  for (const d of dims) n *= d;
  return n;
}

/** Allocates a typed array of the right class for a dtype. */
export function allocate(dtype: DType, n: number): TypedArray {
  switch (dtype) {
    case 'float32':
      return new Float32Array(n);
    case 'float64':
      return new Float64Array(n);
    case 'int64':
      return new BigInt64Array(n);
    case 'int32':
      return new Int32Array(n);
    case 'int16':
      return new Int16Array(n);
    case 'int8':
      return new Int8Array(n);
    case 'uint8':
    case 'bool':
      return new Uint8Array(n);
    case 'uint16':
    case 'float16':
      return new Uint16Array(n);
  }
}

/** Bytes per element of a dtype. */
export function bytesPerElement(dtype: DType): number {
  return allocate(dtype, 0).BYTES_PER_ELEMENT;
}

/** A tiny seeded PRNG (mulberry32) so every random init and shuffle is reproducible from `--seed`. */
export class Rng {
  private s: number;
  constructor(seed: number) {
    this.s = seed >>> 0 || 0x9e3779b9;
  }
  /** Uniform in [0, 1). */
  next(): number {
    let t = (this.s = (this.s + 0x6d2b79f5) >>> 0);
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }
  /** Standard normal (Box–Muller). */
  normal(): number {
    let u = 0;
    while (u === 0) u = this.next();
    return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * this.next());
  }
  /** Integer in [0, n). */
  int(n: number): number {
    return Math.floor(this.next() * n);
  }
  /** A fresh permutation of 0..n-1 (Fisher–Yates). */
  permutation(n: number): Int32Array {
    const p = new Int32Array(n);
    for (let i = 0; i < n; i++) p[i] = i;
    for (let i = n - 1; i > 0; i--) {
      const j = this.int(i + 1);
      const t = p[i]!;
      p[i] = p[j]!;
      p[j] = t;
    }
    return p;
  }
  /** Current state, for checkpoints (resume continues the same stream). */
  get state(): number {
    return this.s;
  }
  set state(v: number) {
    this.s = v >>> 0;
  }
}
