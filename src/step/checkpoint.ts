/**
 * Checkpoints: every carried tensor (parameters, optimizer state, BN statistics) plus a JSON
 * header (step, epoch, RNG state, metrics, config hash), in one binary file written atomically
 * (temp file, fsync, rename), so a crash or a full disk never destroys the previous checkpoint.
 *
 * Layout (version 2): "GRAFTCK2" | u32 header length | 32-byte SHA-256 of everything after it | JSON header |
 * raw tensor bytes (little-endian). Version 1 files ("GRAFTCK1", the same without the checksum) are still read.
 * A file whose checksum does not match (flipped bytes, a torn copy) is refused, never silently loaded.
 */
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { allocate, type DType, sizeOf, Tensor } from '../tensor.js';
import { type AtomicWriteOptions, atomicWrite } from '../util/atomic-write.js';

const MAGIC = 'GRAFTCK2';
/** Version 1: no checksum. */
const MAGIC_V1 = 'GRAFTCK1';
const SUM_BYTES = 32;

/** A checkpoint file that cannot be used (damaged, truncated, foreign). */
export class CheckpointError extends Error {
  override name = 'CheckpointError';
}

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
  const body = MAGIC.length + 4 + SUM_BYTES;
  const out = Buffer.alloc(body + header.length + offset);
  out.write(MAGIC, 0, 'latin1');
  out.writeUInt32LE(header.length, MAGIC.length);
  header.copy(out, body);
  let p = body + header.length;
  for (const [, t] of ck.tensors) {
    Buffer.from(t.data.buffer, t.data.byteOffset, t.data.byteLength).copy(out, p);
    p += t.data.byteLength;
  }
  createHash('sha256')
    .update(out.subarray(body))
    .digest()
    .copy(out, MAGIC.length + 4);
  return out;
}

/** Parses checkpoint bytes; `where` names the file in errors. */
export function decodeCheckpoint(buf: Buffer, where = 'checkpoint'): Checkpoint {
  const bad = (why: string) => new CheckpointError(`${where} is not a valid graft checkpoint (${why}); it was truncated or damaged after it was written.`);
  const magic = buf.length >= MAGIC.length + 4 ? buf.toString('latin1', 0, MAGIC.length) : '';
  if (magic !== MAGIC && magic !== MAGIC_V1) throw bad('bad magic');
  const hl = buf.readUInt32LE(MAGIC.length);
  const headerAt = MAGIC.length + 4 + (magic === MAGIC ? SUM_BYTES : 0);
  const start = headerAt + hl;
  if (start > buf.length) throw bad('header cut short');
  if (
    magic === MAGIC &&
    !createHash('sha256')
      .update(buf.subarray(headerAt))
      .digest()
      .equals(buf.subarray(MAGIC.length + 4, headerAt))
  )
    throw bad('checksum mismatch: its bytes changed since it was written');
  let header: { meta: CheckpointMeta; entries: Entry[] };
  try {
    header = JSON.parse(buf.toString('utf8', headerAt, start));
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

/** Reads a checkpoint file. A damaged one is refused with a {@link CheckpointError} that says what to run instead. */
export function loadCheckpoint(file: string): Checkpoint {
  let buf: Buffer;
  try {
    buf = fs.readFileSync(file);
  } catch (e) {
    throw new Error(`Cannot read checkpoint ${file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}. Check the path, or start without --resume.`);
  }
  try {
    return decodeCheckpoint(buf, file);
  } catch (e) {
    if (e instanceof CheckpointError) throw new CheckpointError(`${e.message} ${damagedAdvice(file)}`);
    throw e;
  }
}

/** What to do about a damaged checkpoint of a run folder, by its role (see docs/formats.md). */
function damagedAdvice(file: string): string {
  const dir = path.dirname(file);
  const best = path.join(dir, 'best.ckpt');
  const overwrite = 'start the run over with graft train --overwrite';
  switch (path.basename(file)) {
    case 'last.ckpt':
      if (fs.existsSync(best) && isIntact(best))
        return `Resume from the best checkpoint instead (the epochs after it are trained again): copy ${best} over ${file} (cp "${best}" "${file}"), then run graft train --resume again; or ${overwrite}.`;
      return `No intact checkpoint to resume from; ${overwrite}.`;
    case 'final.ckpt':
      return fs.existsSync(path.join(dir, 'last.ckpt'))
        ? `Delete it (rm "${file}") and run graft train --resume again: the phase is rebuilt from its last.ckpt; or ${overwrite}.`
        : `Delete it (rm "${file}") and run graft train --resume again: the phase is trained again from its start; or ${overwrite}.`;
    default:
      return `Delete it (rm "${file}") and ${overwrite}, or start without --resume.`;
  }
}

function isIntact(file: string): boolean {
  try {
    decodeCheckpoint(fs.readFileSync(file), file);
    return true;
  } catch {
    return false;
  }
}
