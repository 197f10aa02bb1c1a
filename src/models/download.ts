/**
 * Crash-safe downloads: the bytes go to `<dest>.<pid>.part` beside the target while their SHA-256 is computed,
 * the size and checksum are verified, and only then is the file renamed into place. Any failure (no network,
 * an HTTP error, a stalled connection, more bytes than the size cap, a checksum mismatch) removes the partial file and throws one message
 * saying what failed, where, and what to do.
 */
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { syncDir } from '../util/atomic-write.js';
import { humanBytes } from '../util/bytes.js';
import { describeFsError, errorCode } from '../util/fs-errors.js';

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
  /** Called once the size is known (from Content-Length or the file), or with undefined when it is not. */
  onStart?: (total: number | undefined) => void;
  /** Called with the byte count of every chunk received. */
  onData?: (bytes: number) => void;
  /** Abort when no data arrives for this long (default 30 s; env GRAFT_DOWNLOAD_TIMEOUT_MS). */
  idleTimeoutMs?: number;
  /** Checks the complete temp file before it is renamed into place; returns a reason to reject it. */
  validate?: (file: string) => string | undefined;
}

/** What {@link downloadFile} wrote. */
export interface DownloadResult {
  /** Bytes written. */
  bytes: number;
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
  const part = `${dest}.${process.pid}.part`;
  const hash = createHash('sha256');
  const cap = opts.maxBytes ?? opts.size ?? DEFAULT_MAX_DOWNLOAD_BYTES;
  const overCap = (got: string) =>
    new DownloadError(
      capMessage(source, cap, got, opts.maxBytes === undefined && opts.size !== undefined, opts.raiseCap ?? 'graft models fetch <name> --max-size <size>'),
    );
  let bytes = 0;
  let fd: number | undefined;
  try {
    fd = fs.openSync(part, 'w', 0o644);
    const sink = (chunk: Uint8Array) => {
      // refuse the chunk that would pass the cap before writing it: the part file never grows past the cap
      if (bytes + chunk.length > cap) throw overCap(`more than ${bytes + chunk.length} bytes`);
      hash.update(chunk);
      let done = 0;
      while (done < chunk.length) done += fs.writeSync(fd!, chunk, done, chunk.length - done);
      bytes += chunk.length;
      opts.onData?.(chunk.length);
    };
    const announced = (total: number | undefined) => {
      if (total !== undefined && total > cap) throw overCap(`${total} bytes announced`);
      opts.onStart?.(total);
    };
    if (isRemote(source)) await fromHttp(source, sink, { ...opts, onStart: announced });
    else await fromFile(source, sink, { ...opts, onStart: announced });
    fs.fsyncSync(fd);
    fs.closeSync(fd);
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
    syncDir(dir);
    return { bytes, sha256 };
  } catch (e) {
    if (fd !== undefined)
      try {
        fs.closeSync(fd);
      } catch {
        // already failing
      }
    fs.rmSync(part, { force: true });
    if (e instanceof DownloadError) throw new Error(e.message);
    const code = errorCode(e);
    if (code && ['ENOSPC', 'EDQUOT', 'EACCES', 'EPERM', 'EROFS', 'EIO'].includes(code))
      throw new Error(describeFsError('write', part, e, `Nothing was kept in ${dir}.`));
    throw e;
  }
}

async function fromHttp(url: string, sink: (c: Uint8Array) => void, opts: DownloadOptions): Promise<void> {
  const idle = opts.idleTimeoutMs ?? (Number(process.env.GRAFT_DOWNLOAD_TIMEOUT_MS) || 30_000);
  const ac = new AbortController();
  let timer: NodeJS.Timeout | undefined;
  const arm = () => {
    clearTimeout(timer);
    timer = setTimeout(() => ac.abort(), idle);
  };
  const fix = 'Check your network connection, or download the file another way and pass it with --url <file>.';
  arm();
  try {
    let res: Response;
    try {
      res = await fetch(url, { signal: ac.signal, redirect: 'follow', headers: { 'user-agent': 'graft (model fetch)' } });
    } catch (e) {
      if (ac.signal.aborted) throw new DownloadError(`Could not download ${url}: no response within ${idle / 1000} s. ${fix}`);
      throw new DownloadError(`Could not download ${url}: ${networkCause(e)}. ${fix}`);
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
    const length = Number(res.headers.get('content-length'));
    try {
      opts.onStart?.(Number.isFinite(length) && length > 0 ? length : opts.size);
    } catch (e) {
      await res.body?.cancel().catch(() => {});
      throw e;
    }
    if (!res.body) throw new DownloadError(`Could not download ${url}: the response has no body.`);
    try {
      for await (const chunk of res.body as AsyncIterable<Uint8Array>) {
        arm();
        sink(chunk);
      }
    } catch (e) {
      if (e instanceof DownloadError) throw e;
      if (ac.signal.aborted) throw new DownloadError(`Download of ${url} stalled (no data for ${idle / 1000} s) and was abandoned. ${fix}`);
      if (errorCode(e) && ['ENOSPC', 'EDQUOT', 'EACCES', 'EPERM', 'EROFS', 'EIO'].includes(errorCode(e)!)) throw e;
      throw new DownloadError(`Download of ${url} broke off: ${networkCause(e)}. Try again. ${fix}`);
    }
  } finally {
    clearTimeout(timer);
  }
}

async function fromFile(source: string, sink: (c: Uint8Array) => void, opts: DownloadOptions): Promise<void> {
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
