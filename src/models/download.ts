/**
 * Crash-safe, resumable downloads: the bytes go to `<dest>.part` beside the target while their SHA-256 is
 * computed, the size and checksum are verified, and only then is the file renamed into place. A transfer that
 * breaks off (or a killed process) leaves the `.part` file and its `.part.json` note (URL, expected size and
 * checksum); the next download of the same file asks the server for the rest with `Range: bytes=N-`. Any other
 * failure (an HTTP error, more bytes than the size cap, a checksum mismatch) removes the partial file and throws
 * one message saying what failed, where, and what to do. One process at a time owns a `.part` file (a pid lock).
 */
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { atomicWrite, syncDir } from '../util/atomic-write.js';
import { humanBytes } from '../util/bytes.js';
import { describeFsError, errorCode } from '../util/fs-errors.js';
import { acquirePidLock } from '../util/pid-lock.js';

/** Options of {@link downloadFile}. */
export interface DownloadOptions {
  /** Expected lower-case hex SHA-256; a mismatch is an error and nothing is kept. */
  sha256?: string;
  /** Expected size in bytes. */
  size?: number;
  /**
   * Stop and fail once more than this many bytes arrive (default: `size` when known, else
   * {@link DEFAULT_MAX_DOWNLOAD_BYTES}); a server that sends no Content-Length cannot fill the disk.
   */
  maxBytes?: number;
  /** The command that raises the cap, for the error message (default: `graft models fetch <name> --max-size <size>`). */
  raiseCap?: string;
  /**
   * Called once the size is known (from Content-Length or the file), or with undefined when it is not; `resumed`
   * is the byte count already on disk from an interrupted download (0 for a fresh one).
   */
  onStart?: (total: number | undefined, resumed: number) => void;
  /** Keep no `.part` file for a later resume (default: an http(s) download that breaks off is resumable). */
  noResume?: boolean;
  /** Called with the byte count of every chunk received. */
  onData?: (bytes: number) => void;
  /**
   * Called once the transfer starts (`received`: the bytes already on disk from an interrupted download, else 0)
   * and after every chunk, with the bytes of the file received so far and its size when known. Bars (the CLI's,
   * a run's `progress` events) draw from this one callback.
   */
  onProgress?: (received: number, total: number | undefined) => void;
  /** Abort when no data arrives for this long (default 30 s; env GRAFT_DOWNLOAD_TIMEOUT_MS). */
  idleTimeoutMs?: number;
  /** Checks the complete temp file before it is renamed into place; returns a reason to reject it. */
  validate?: (file: string) => string | undefined;
}

/** What {@link downloadFile} wrote. */
export interface DownloadResult {
  /** Bytes written. */
  bytes: number;
  /** Bytes that were already on disk from an interrupted download and were not fetched again. */
  resumed: number;
  /** Lower-case hex SHA-256 of the file. */
  sha256: string;
}

/** Cap on a download whose size is not pinned: 2 GiB (`graft models fetch --max-size` changes it). */
export const DEFAULT_MAX_DOWNLOAD_BYTES = 2 * 1024 ** 3;

/** An http(s) URL (anything else is read as a local file path or `file:` URL). */
export function isRemote(source: string): boolean {
  return /^https?:\/\//i.test(source);
}

/** Plain-language causes of the network errors Node's fetch reports (in `error.cause.code`). */
const NET_CAUSES: Record<string, string> = {
  ECONNREFUSED: 'the connection was refused (is the server down, or a firewall in the way?)',
  ENOTFOUND: 'the host name could not be resolved (no network, or no DNS)',
  EAI_AGAIN: 'the host name could not be resolved right now (no network, or DNS is unreachable)',
  ECONNRESET: 'the connection was reset',
  ETIMEDOUT: 'the connection timed out',
  ENETUNREACH: 'the network is unreachable',
  EHOSTUNREACH: 'the host is unreachable',
  UND_ERR_CONNECT_TIMEOUT: 'the connection timed out',
  UND_ERR_SOCKET: 'the connection was closed unexpectedly',
  CERT_HAS_EXPIRED: "the server's TLS certificate has expired",
  UNABLE_TO_VERIFY_LEAF_SIGNATURE: "the server's TLS certificate could not be verified",
  SELF_SIGNED_CERT_IN_CHAIN: "the server's TLS certificate chain is self-signed (a proxy intercepting TLS?)",
  DEPTH_ZERO_SELF_SIGNED_CERT: "the server's TLS certificate is self-signed",
};

/** The innermost useful cause of a fetch failure ("fetch failed" wraps the socket error, sometimes an AggregateError). */
function networkCause(e: unknown): string {
  let cur: unknown = e;
  for (let i = 0; i < 4 && cur; i++) {
    const errs = (cur as { errors?: unknown[] }).errors;
    const code = errorCode(cur) ?? (Array.isArray(errs) ? errorCode(errs[0]) : undefined);
    if (code) return `${NET_CAUSES[code] ?? (cur as Error).message} (${code})`;
    const next = (cur as { cause?: unknown }).cause;
    if (!next) break;
    cur = next;
  }
  return (cur as Error)?.message ?? String(cur);
}

class DownloadError extends Error {
  override name = 'DownloadError';
  /** The transfer broke off: keep the `.part` file so the next download resumes it. */
  resumable = false;
}

/** The note beside a `.part` file: what it is a prefix of (a resume needs the same URL and the same pinned file). */
interface PartNote {
  source: string;
  size?: number;
  sha256?: string;
}

/** The partial file of `dest` and its note. */
export function partPaths(dest: string): { part: string; note: string; lock: string } {
  return { part: `${dest}.part`, note: `${dest}.part.json`, lock: `${dest}.part.lock` };
}

/** Bytes of an earlier interrupted download of the same source and pinned file, or 0 (the leftovers are then removed). */
function resumableBytes(dest: string, note: PartNote): number {
  const p = partPaths(dest);
  let prev: PartNote | undefined;
  try {
    prev = JSON.parse(fs.readFileSync(p.note, 'utf8')) as PartNote;
  } catch {
    prev = undefined;
  }
  const size = fs.existsSync(p.part) ? fs.statSync(p.part).size : 0;
  if (prev && prev.source === note.source && prev.size === note.size && prev.sha256 === note.sha256 && size > 0) return size;
  fs.rmSync(p.part, { force: true });
  fs.rmSync(p.note, { force: true });
  return 0;
}

function capMessage(source: string, cap: number, got: string, pinned: boolean, raise: string): string {
  const what = `Download of ${source} stopped: ${got}, over the cap of ${humanBytes(cap)} (${cap} bytes)`;
  return pinned
    ? `${what}, the size the registry entry pins. The server sends something else or the file changed upstream; nothing was kept. If the file really changed, update the entry's "size" and "sha256", or fetch it with --url and --max-size (${raise}).`
    : `${what}; nothing was kept. If the file really is that large, raise the cap: ${raise}.`;
}

/** Removes partial downloads of `dest` left by processes that no longer run. */
export function removeStaleParts(dest: string): void {
  const dir = path.dirname(dest);
  const base = path.basename(dest);
  let names: string[];
  try {
    names = fs.readdirSync(dir);
  } catch {
    return;
  }
  for (const n of names) {
    const m = n.startsWith(`${base}.`) && /\.(\d+)\.part$/.exec(n);
    if (!m || Number(m[1]) === process.pid) continue;
    try {
      process.kill(Number(m[1]), 0);
    } catch (e) {
      if (errorCode(e) === 'ESRCH') fs.rmSync(path.join(dir, n), { force: true });
    }
  }
}

/**
 * Downloads `source` (an http(s) URL, a `file:` URL or a local path) to `dest` atomically and verifies it.
 * @returns the byte count and SHA-256 of the file now at `dest`.
 * @throws one message naming the source and the cause; no partial file is left behind and an existing `dest` is untouched.
 */
export async function downloadFile(source: string, dest: string, opts: DownloadOptions = {}): Promise<DownloadResult> {
  const dir = path.dirname(path.resolve(dest));
  try {
    fs.mkdirSync(dir, { recursive: true });
  } catch (e) {
    throw new Error(describeFsError('create the model cache folder', dir, e, 'Pass another folder with --dir or GRAFT_MODELS_DIR.'));
  }
  removeStaleParts(dest);
  const paths = partPaths(dest);
  const lock = acquirePidLock(paths.lock, { what: `the download of ${dest}`, command: 'graft models fetch', retry: 'try again' });
  try {
    return await downloadLocked(source, dest, dir, paths, opts);
  } finally {
    lock.release();
  }
}

async function downloadLocked(source: string, dest: string, dir: string, paths: ReturnType<typeof partPaths>, opts: DownloadOptions): Promise<DownloadResult> {
  const { part } = paths;
  const remote = isRemote(source);
  const note: PartNote = { source, size: opts.size, sha256: opts.sha256?.toLowerCase() };
  let hash = createHash('sha256');
  const cap = opts.maxBytes ?? opts.size ?? DEFAULT_MAX_DOWNLOAD_BYTES;
  const overCap = (got: string) =>
    new DownloadError(
      capMessage(source, cap, got, opts.maxBytes === undefined && opts.size !== undefined, opts.raiseCap ?? 'graft models fetch <name> --max-size <size>'),
    );
  let resumed = remote && !opts.noResume ? resumableBytes(dest, note) : 0;
  if (!resumed) {
    fs.rmSync(part, { force: true });
    fs.rmSync(paths.note, { force: true });
  }
  let bytes = 0;
  let total: number | undefined;
  let fd: number | undefined;
  try {
    if (resumed > cap) resumed = 0;
    if (resumed) for await (const chunk of fs.createReadStream(part, { highWaterMark: 1 << 20 })) hash.update(chunk as Buffer);
    bytes = resumed;
    fd = fs.openSync(part, resumed ? 'a' : 'w', 0o644);
    if (remote && !opts.noResume) atomicWrite(paths.note, `${JSON.stringify(note)}\n`);
    const sink = (chunk: Uint8Array) => {
      // refuse the chunk that would pass the cap before writing it: the part file never grows past the cap
      if (bytes + chunk.length > cap) throw overCap(`more than ${bytes + chunk.length} bytes`);
      hash.update(chunk);
      let done = 0;
      while (done < chunk.length) done += fs.writeSync(fd!, chunk, done, chunk.length - done);
      bytes += chunk.length;
      opts.onData?.(chunk.length);
      opts.onProgress?.(bytes, total);
    };
    const announced = (size: number | undefined, from: number) => {
      if (size !== undefined && size > cap) throw overCap(`${size} bytes announced`);
      total = size;
      opts.onStart?.(size, from);
      opts.onProgress?.(from, size);
    };
    const restart = () => {
      // the server ignored the Range (200 instead of 206): start over from byte 0
      fs.ftruncateSync(fd!, 0);
      hash = createHash('sha256');
      resumed = 0;
      bytes = 0;
    };
    if (remote) await fromHttp(source, sink, { ...opts, onStart: announced }, resumed, restart);
    else await fromFile(source, sink, { ...opts, onStart: (t) => announced(t, 0) });
    return finish();
  } catch (e) {
    if (fd !== undefined)
      try {
        fs.closeSync(fd);
      } catch {
        // already failing
      }
    fd = undefined;
    const keep = e instanceof DownloadError && e.resumable && remote && !opts.noResume && bytes > 0;
    if (!keep) {
      fs.rmSync(part, { force: true });
      fs.rmSync(paths.note, { force: true });
    }
    if (e instanceof DownloadError)
      throw new Error(keep ? `${e.message} The ${humanBytes(bytes)} received are kept in ${part}; the next fetch resumes from there.` : e.message);
    const code = errorCode(e);
    if (code && ['ENOSPC', 'EDQUOT', 'EACCES', 'EPERM', 'EROFS', 'EIO'].includes(code))
      throw new Error(describeFsError('write', part, e, `Nothing was kept in ${dir}.`));
    throw e;
  }

  function finish(): DownloadResult {
    fs.fsyncSync(fd!);
    fs.closeSync(fd!);
    fd = undefined;
    const sha256 = hash.digest('hex');
    if (opts.size !== undefined && bytes !== opts.size)
      throw new DownloadError(
        `Downloaded ${bytes} bytes from ${source} but expected ${opts.size}; the file is incomplete or changed upstream and was deleted. Try again; if the file really changed, update the entry's "size" and "sha256".`,
      );
    if (opts.sha256 && sha256 !== opts.sha256.toLowerCase())
      throw new DownloadError(
        `Checksum mismatch for ${source}: SHA-256 ${sha256}, expected ${opts.sha256.toLowerCase()}. The download is corrupt or the file changed upstream; it was deleted. Try again, or fix the entry's "sha256" if the new file is the one you want.`,
      );
    const bad = opts.validate?.(part);
    if (bad) throw new DownloadError(`${source} is not usable: ${bad}; it was deleted.`);
    fs.renameSync(part, dest);
    fs.rmSync(paths.note, { force: true });
    syncDir(dir);
    return { bytes, resumed, sha256 };
  }
}

async function fromHttp(
  url: string,
  sink: (c: Uint8Array) => void,
  opts: Omit<DownloadOptions, 'onStart'> & { onStart: (total: number | undefined, resumed: number) => void },
  from: number,
  restart: () => void,
): Promise<void> {
  const idle = opts.idleTimeoutMs ?? (Number(process.env.GRAFT_DOWNLOAD_TIMEOUT_MS) || 30_000);
  const ac = new AbortController();
  let timer: NodeJS.Timeout | undefined;
  const arm = () => {
    clearTimeout(timer);
    timer = setTimeout(() => ac.abort(), idle);
  };
  const fix = `Check your network connection, or point graft at a mirror (${MIRROR_ENV} or --mirror <url-prefix>), or download the file another way and pass it with --url <file>.`;
  const broke = (message: string) => Object.assign(new DownloadError(message), { resumable: true });
  arm();
  try {
    let res: Response;
    const headers: Record<string, string> = { 'user-agent': 'graft (model fetch)' };
    if (from > 0) headers.range = `bytes=${from}-`;
    try {
      res = await fetch(url, { signal: ac.signal, redirect: 'follow', headers });
    } catch (e) {
      if (ac.signal.aborted) throw broke(`Could not download ${url}: no response within ${idle / 1000} s. ${fix}`);
      throw broke(`Could not download ${url}: ${networkCause(e)}. ${fix}`);
    }
    if (from > 0 && res.status === 416) {
      // the part is not a prefix the server can continue (the file shrank upstream?): fetch it whole
      await res.body?.cancel().catch(() => {});
      restart();
      return fromHttp(url, sink, opts, 0, restart);
    }
    if (!res.ok) {
      await res.body?.cancel().catch(() => {});
      const hint =
        res.status === 404 || res.status === 410
          ? 'The file is not there (moved or removed); pass a working URL with --url, or fix the registry entry.'
          : res.status === 401 || res.status === 403
            ? 'The server refuses access; the file may need a login — download it yourself and pass it with --url <file>.'
            : res.status >= 500
              ? 'The server failed; try again later.'
              : 'Check the URL.';
      throw new DownloadError(`Could not download ${url}: HTTP ${res.status}${res.statusText ? ` ${res.statusText}` : ''}. ${hint}`);
    }
    const range = /^bytes (\d+)-\d+\/(\d+|\*)$/.exec(res.headers.get('content-range') ?? '');
    if (from > 0 && !(res.status === 206 && range && Number(range[1]) === from)) {
      restart(); // a 200 (the server ignores Range) or another range: the body is the whole file
      from = 0;
    }
    const length = Number(res.headers.get('content-length'));
    const total = range && range[2] !== '*' && from > 0 ? Number(range[2]) : Number.isFinite(length) && length > 0 ? from + length : opts.size;
    try {
      opts.onStart(total, from);
    } catch (e) {
      await res.body?.cancel().catch(() => {});
      throw e;
    }
    if (!res.body) throw new DownloadError(`Could not download ${url}: the response has no body.`);
    try {
      for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
        arm();
        sink(chunk);
      }
    } catch (e) {
      if (e instanceof DownloadError) throw e;
      if (ac.signal.aborted) throw broke(`Download of ${url} stalled (no data for ${idle / 1000} s) and was abandoned. ${fix}`);
      if (errorCode(e) && ['ENOSPC', 'EDQUOT', 'EACCES', 'EPERM', 'EROFS', 'EIO'].includes(errorCode(e)!)) throw e;
      throw broke(`Download of ${url} broke off: ${networkCause(e)}. Try again. ${fix}`);
    }
  } finally {
    clearTimeout(timer);
  }
}

/** The environment variable naming a mirror: a URL prefix that replaces the origin of every registry download URL. */
export const MIRROR_ENV = 'GRAFT_MODEL_MIRROR';

/**
 * `url` with its origin (scheme, host, port) replaced by `mirror` (default: `GRAFT_MODEL_MIRROR`), keeping the
 * path and query: `https://github.com/onnx/models/raw/main/x.onnx` with mirror `http://intranet/graft` is
 * `http://intranet/graft/onnx/models/raw/main/x.onnx`. Without a mirror, or for a non-http(s) source, `url` as it is.
 * @throws when the mirror is not an http(s) URL.
 */
export function mirrorUrl(url: string, mirror: string | undefined = process.env[MIRROR_ENV]): string {
  if (!mirror || !isRemote(url)) return url;
  if (!isRemote(mirror))
    throw new Error(`The model mirror "${mirror}" (${MIRROR_ENV} or --mirror) is not an http:// or https:// URL prefix, e.g. http://models.intranet/graft.`);
  const u = new URL(url);
  return `${mirror.replace(/\/+$/, '')}${u.pathname}${u.search}`;
}

async function fromFile(
  source: string,
  sink: (c: Uint8Array) => void,
  opts: Omit<DownloadOptions, 'onStart'> & { onStart: (total: number) => void },
): Promise<void> {
  const file = source.startsWith('file:') ? fileURLToPath(source) : source;
  let size: number;
  try {
    size = fs.statSync(file).size;
  } catch (e) {
    throw new DownloadError(describeFsError('read', file, e));
  }
  opts.onStart?.(size);
  try {
    for await (const chunk of fs.createReadStream(file, { highWaterMark: 1 << 20 })) sink(chunk as Buffer);
  } catch (e) {
    if (e instanceof DownloadError) throw e;
    if (errorCode(e) && ['ENOSPC', 'EDQUOT', 'EROFS'].includes(errorCode(e)!)) throw e;
    throw new DownloadError(describeFsError('read', file, e));
  }
}
