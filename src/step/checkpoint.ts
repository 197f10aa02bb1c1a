/**
 * Checkpoints: every carried tensor (parameters, optimizer state, BN statistics) plus a JSON
 * header (step, epoch, RNG state, metrics, config hash), in one binary file written atomically
 * (temp file, fsync, rename), so a crash or a full disk never destroys the previous checkpoint.
 *
 * Layout: "GRAFTCK1" | u32 header length | JSON header | raw tensor bytes (little-endian).
 */
import fs from 'node:fs';
import { allocate, type DType, sizeOf, Tensor } from '../tensor.js';
import { type AtomicWriteOptions, atomicWrite } from '../util/atomic-write.js';

const MAGIC = 'GRAFTCK1';

export interface CheckpointMeta {
  step: number;
  [key: string]: unknown;
}

export interface Checkpoint {
  meta: CheckpointMeta;
  tensors: Map<string, Tensor>;
}

interface Entry {
  name: string;
  dtype: DType;
  dims: number[];
  offset: number;
  bytes: number;
}

/** Serializes a checkpoint to bytes. */
export function encodeCheckpoint(ck: Checkpoint): Buffer {
  const entries: Entry[] = [];
  let offset = 0;
  for (const [name, t] of ck.tensors) {
    entries.push({ name, dtype: t.dtype, dims: [...t.dims], offset, bytes: t.data.byteLength });
    offset += t.data.byteLength;
  }
  const header = Buffer.from(JSON.stringify({ meta: ck.meta, entries }), 'utf8');
  const out = Buffer.alloc(MAGIC.length + 4 + header.length + offset);
  out.write(MAGIC, 0, 'latin1');
  out.writeUInt32LE(header.length, MAGIC.length);
  header.copy(out, MAGIC.length + 4);
  let p = MAGIC.length + 4 + header.length;
  for (const [, t] of ck.tensors) {
    Buffer.from(t.data.buffer, t.data.byteOffset, t.data.byteLength).copy(out, p);
    p += t.data.byteLength;
  }
  return out;
}

/** Parses checkpoint bytes; `where` names the file in errors. */
export function decodeCheckpoint(buf: Buffer, where = 'checkpoint'): Checkpoint {
  const bad = (why: string) =>
    new Error(
      `${where} is not a valid graft checkpoint (${why}). It may be truncated by a crash; use the other checkpoint (best/last) or start without --resume.`,
    );
  if (buf.length < MAGIC.length + 4 || buf.toString('latin1', 0, MAGIC.length) !== MAGIC) throw bad('bad magic');
  const hl = buf.readUInt32LE(MAGIC.length);
  const start = MAGIC.length + 4 + hl;
  if (start > buf.length) throw bad('header cut short');
  let header: { meta: CheckpointMeta; entries: Entry[] };
  try {
    header = JSON.parse(buf.toString('utf8', MAGIC.length + 4, start));
  } catch {
    throw bad('unreadable header');
  }
  const tensors = new Map<string, Tensor>();
  for (const e of header.entries) {
    const n = sizeOf(e.dims);
    const data = allocate(e.dtype, n);
    if (data.byteLength !== e.bytes || start + e.offset + e.bytes > buf.length) throw bad(`tensor "${e.name}" is cut short`);
    new Uint8Array(data.buffer).set(buf.subarray(start + e.offset, start + e.offset + e.bytes));
    tensors.set(e.name, new Tensor(e.dtype, e.dims, data));
  }
  return { meta: header.meta, tensors };
}

/** Writes a checkpoint atomically. On failure (e.g. disk full) the previous file at `file` is untouched. */
export function saveCheckpoint(file: string, ck: Checkpoint, opts: AtomicWriteOptions = {}): void {
  try {
    atomicWrite(file, encodeCheckpoint(ck), opts);
  } catch (e) {
    throw new Error(`Could not write checkpoint: ${(e as Error).message} The previous checkpoint is intact; resume from it with --resume.`);
  }
}

/** Reads a checkpoint file. */
export function loadCheckpoint(file: string): Checkpoint {
  let buf: Buffer;
  try {
    buf = fs.readFileSync(file);
  } catch (e) {
    throw new Error(`Cannot read checkpoint ${file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}. Check the path, or start without --resume.`);
  }
  return decodeCheckpoint(buf, file);
}
