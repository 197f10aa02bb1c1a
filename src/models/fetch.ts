/**
 * `graft models fetch`: puts a registry entry's ONNX model into the local model cache, with a sidecar JSON
 * (preprocessing, labels, feature cut, provenance) so `Network.load`, `graft train --backbone` and `graft predict`
 * can use the cached file directly. A model already in the cache is returned without touching the network.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { preprocessToJson } from '../data/preprocess.js';
import { atomicWrite } from '../util/atomic-write.js';
import { humanBytes } from '../util/bytes.js';
import { graftVersion } from '../util/version.js';
import { DEFAULT_MAX_DOWNLOAD_BYTES, downloadFile, isRemote, MIRROR_ENV, mirrorUrl } from './download.js';
import { entryPreprocess, type ModelEntry } from './registry.js';

/**
 * The model cache folder: `dir` if given, else `GRAFT_MODELS_DIR`, else `$XDG_CACHE_HOME/graft/models`,
 * else `~/.cache/graft/models`.
 */
export function modelsDir(dir?: string, env: NodeJS.ProcessEnv = process.env): string {
  if (dir) return path.resolve(dir);
  if (env.GRAFT_MODELS_DIR) return path.resolve(env.GRAFT_MODELS_DIR);
  return path.join(env.XDG_CACHE_HOME || path.join(os.homedir(), '.cache'), 'graft', 'models');
}

/** The cached files of an entry: `<dir>/<stem>.onnx` and its sidecar `<dir>/<stem>.json` (stem: the name, lower-case, `:` → `-`). */
export function cachePaths(entry: Pick<ModelEntry, 'name'>, dir: string): { onnx: string; sidecar: string } {
  const stem = entry.name.toLowerCase().replace(/[^a-z0-9._-]+/g, '-');
  return { onnx: path.join(dir, `${stem}.onnx`), sidecar: path.join(dir, `${stem}.json`) };
}

/** The sidecar `graft models fetch` writes beside a cached model (readable by `Network.load` like a graft export's). */
export interface CachedSidecar {
  graft: string;
  /** Registry name. */
  model: string;
  /** URL, file or `nsfwjs:<name>` the model came from. */
  source: string;
  sha256?: string;
  bytes?: number;
  fetched: string;
  preprocess: unknown;
  labels?: string[];
  cut?: string;
}

/** State of an entry in the cache. `stale`: present but not the file the entry (or `--sha256`) names. */
export type CacheState = 'cached' | 'missing' | 'stale';

/** Whether `entry` is in the cache at `dir` (cheap: file sizes and the recorded checksum, no hashing). */
export function cacheState(entry: ModelEntry, dir: string, expectSha256 = entry.download?.sha256): CacheState {
  const p = cachePaths(entry, dir);
  if (!fs.existsSync(p.onnx) || !fs.existsSync(p.sidecar)) return 'missing';
  let side: Partial<CachedSidecar>;
  try {
    side = JSON.parse(fs.readFileSync(p.sidecar, 'utf8')) as Partial<CachedSidecar>;
  } catch {
    return 'stale';
  }
  const size = fs.statSync(p.onnx).size;
  if (side.bytes !== undefined && side.bytes !== size) return 'stale';
  if (expectSha256 && side.sha256 && side.sha256 !== expectSha256.toLowerCase()) return 'stale';
  if (entry.download?.size !== undefined && side.source === entry.download.url && size !== entry.download.size) return 'stale';
  return 'cached';
}

/** Options of {@link fetchModel}. */
export interface FetchOptions {
  /** Cache folder (see {@link modelsDir}). */
  dir?: string;
  /** Download from here instead (an http(s) URL, a `file:` URL or a local .onnx path), e.g. a mirror or your own export. */
  url?: string;
  /** Expected SHA-256 of the file from `url` (default: the entry's, when `url` is not given). */
  sha256?: string;
  /** Fetch again even when cached. */
  force?: boolean;
  /** Fail once a download passes this many bytes (default: the entry's pinned size, else 2 GiB). */
  maxBytes?: number;
  /**
   * A URL prefix that replaces the origin of the entry's download URL, for sites without internet access
   * (default: the `GRAFT_MODEL_MIRROR` environment variable). Not applied to `url`.
   */
  mirror?: string;
  /** Progress: called with the total bytes when known (and the bytes resumed from an interrupted download), then with every chunk. */
  onStart?: (total: number | undefined, resumed: number) => void;
  onData?: (bytes: number) => void;
  /** Progress as the bytes of the file received so far and its size when known (see `DownloadOptions.onProgress`). */
  onProgress?: (received: number, total: number | undefined) => void;
  /** Informational messages (e.g. "converting nsfwjs MobileNetV2"). */
  log?: (message: string) => void;
  /** Warnings (e.g. an op graft does not know, after the feature cut it may not matter). */
  warn?: (message: string) => void;
}

/** What {@link fetchModel} did. */
export interface FetchResult {
  model: string;
  path: string;
  sidecar: string;
  /** True when the cached copy was returned without fetching anything. */
  cached: boolean;
  source: string;
  bytes: number;
  sha256?: string;
}

/**
 * Makes sure `entry`'s ONNX model is in the cache and returns its path. Cached models are returned as they are
 * (no network); otherwise the model is downloaded (verified by size and SHA-256 when known), copied from
 * `opts.url`, or — for nsfwjs entries — converted from the installed npm package.
 * @throws one message saying what failed and how to fix it; the cache keeps no partial file.
 */
export async function fetchModel(entry: ModelEntry, opts: FetchOptions = {}): Promise<FetchResult> {
  const dir = modelsDir(opts.dir);
  const p = cachePaths(entry, dir);
  const expectSha = opts.sha256?.toLowerCase() ?? (opts.url ? undefined : entry.download?.sha256);
  if (!opts.force && cacheState(entry, dir, expectSha) === 'cached') {
    const side = JSON.parse(fs.readFileSync(p.sidecar, 'utf8')) as CachedSidecar;
    return { model: entry.name, path: p.onnx, sidecar: p.sidecar, cached: true, source: side.source, bytes: fs.statSync(p.onnx).size, sha256: side.sha256 };
  }
  if (entry.nsfwjs && !opts.url) return convertNsfwjs(entry, p, opts);
  const mirror = opts.url ? undefined : (opts.mirror ?? process.env[MIRROR_ENV]);
  const source = opts.url ?? (entry.download ? mirrorUrl(entry.download.url, mirror) : undefined);
  if (!source) throw new Error(noSourceMessage(entry));
  const size = opts.url ? undefined : entry.download?.size;
  const validate = expectSha ? undefined : onnxHeaderProblem;
  let got: { bytes: number; sha256: string };
  try {
    got = await downloadFile(isRemote(source) ? source : path.resolve(source), p.onnx, {
      sha256: expectSha,
      size,
      maxBytes: opts.maxBytes,
      raiseCap: raiseCapCommand(entry, opts.maxBytes ?? size ?? DEFAULT_MAX_DOWNLOAD_BYTES, size !== undefined || opts.url ? source : undefined),
      validate,
      onStart: opts.onStart,
      onData: opts.onData,
      onProgress: opts.onProgress,
    });
  } catch (e) {
    // offline: say how to use a mirror (only for the entry's own URL; --url is already explicit)
    const msg = (e as Error).message;
    if (!opts.url && !mirror && isRemote(source) && /Could not download|broke off|stalled/.test(msg) && !/HTTP \d/.test(msg))
      throw new Error(`${msg} On a site without internet access, set ${MIRROR_ENV}=<url-prefix> (or pass --mirror) to fetch ${entry.name} from a local copy.`);
    throw e;
  }
  const { bytes, sha256 } = got;
  const side: CachedSidecar = {
    graft: graftVersion(),
    model: entry.name,
    source: isRemote(source) ? source : path.resolve(source),
    sha256,
    bytes,
    fetched: new Date().toISOString(),
    preprocess: preprocessToJson(entryPreprocess(entry)),
  };
  atomicWrite(p.sidecar, `${JSON.stringify(side, null, 2)}\n`);
  await checkUsable(entry, p.onnx, opts);
  return { model: entry.name, path: p.onnx, sidecar: p.sidecar, cached: false, source: side.source, bytes, sha256 };
}

/**
 * Loads a fetched model and infers its shapes, so that an opset graft does not read, or an op it does not know,
 * is named now rather than at the first training step. An unreadable opset fails the fetch (the verified file
 * stays in the cache); an unknown op is a warning, since a feature cut before it (`--cut`) may leave it out.
 */
async function checkUsable(entry: ModelEntry, file: string, opts: FetchOptions): Promise<void> {
  const [{ loadModel }, { inferShapes }, { registerStandardOps }] = await Promise.all([
    import('../onnx/io.js'),
    import('../ir/emit.js'),
    import('../ops/index.js'),
  ]);
  registerStandardOps();
  let model: ReturnType<typeof loadModel>;
  try {
    model = loadModel(file);
  } catch (e) {
    throw new Error(`${entry.name} was fetched and verified (${file}), but graft cannot load it: ${(e as Error).message}`);
  }
  try {
    inferShapes(model.graph.clone(), model.opset);
  } catch (e) {
    opts.warn?.(`${entry.name}: ${(e as Error).message}`);
  }
}

/** Converts a bundled nsfwjs model with graft's importer; the sidecar is written first, the .onnx (atomically) last. */
async function convertNsfwjs(entry: ModelEntry, p: { onnx: string; sidecar: string }, opts: FetchOptions): Promise<FetchResult> {
  const name = entry.nsfwjs!;
  opts.log?.(`converting nsfwjs ${name} from the installed npm package (no network needed)`);
  const [{ importNsfwjs }, { saveModel }] = await Promise.all([import('../import/index.js'), import('../onnx/io.js')]);
  const m = importNsfwjs(name);
  const labels = m.metadata['graft.labels'] ? (JSON.parse(m.metadata['graft.labels']) as string[]) : undefined;
  const preprocess = m.metadata['graft.preprocess'] ? JSON.parse(m.metadata['graft.preprocess']) : preprocessToJson(entryPreprocess(entry));
  fs.rmSync(p.onnx, { force: true }); // an interrupted conversion then leaves no .onnx without its new sidecar
  const side: CachedSidecar = {
    graft: graftVersion(),
    model: entry.name,
    source: `nsfwjs:${name}`,
    fetched: new Date().toISOString(),
    preprocess,
    labels,
    cut: m.metadata['graft.cut'],
  };
  atomicWrite(p.sidecar, `${JSON.stringify(side, null, 2)}\n`);
  saveModel(m, p.onnx);
  const bytes = fs.statSync(p.onnx).size;
  side.bytes = bytes;
  atomicWrite(p.sidecar, `${JSON.stringify(side, null, 2)}\n`);
  return { model: entry.name, path: p.onnx, sidecar: p.sidecar, cached: false, source: side.source, bytes };
}

/** The command that fetches `entry` with twice the cap that stopped it (`url`: pass it with --url). */
function raiseCapCommand(entry: ModelEntry, cap: number, url: string | undefined): string {
  const twice = humanBytes(cap * 2).replace(/\.0 | /g, '');
  return `graft models fetch ${entry.name}${url ? ` --url ${url}` : ''} --max-size ${twice}`;
}

function noSourceMessage(entry: ModelEntry): string {
  const stem = path.basename(cachePaths(entry, '.').onnx);
  if (entry.export)
    return (
      `${entry.name} has no download: its ONNX weights are exported from PyTorch. Run (needs torch${entry.family === 'timm' ? ' and timm' : ', torchvision'}): ` +
      `${entry.export} — then put the file in the cache with \`graft models fetch ${entry.name} --url ${exportedFile(entry) ?? stem}\`. ` +
      'Without Python, fetch an ONNX Model Zoo backbone directly: graft models fetch mobilenetv2 (or resnet18-v1, resnet50-v1, efficientnet-lite4).'
    );
  return `${entry.name} names no ONNX file to download. Pass one with --url <url|file>, or add "download": {"url", "sha256", "size"} to its registry entry.`;
}

/** The file an entry's export command writes (its `'<name>.onnx'` argument). */
function exportedFile(entry: ModelEntry): string | undefined {
  return /'([^']+\.onnx)'/.exec(entry.export ?? '')?.[1];
}

/** Why a file is not an ONNX model, judging by its first bytes (a ModelProto starts with ir_version, tag 0x08). */
export function onnxHeaderProblem(file: string): string | undefined {
  const fd = fs.openSync(file, 'r');
  const head = Buffer.alloc(64);
  let n: number;
  try {
    n = fs.readSync(fd, head, 0, 64, 0);
  } finally {
    fs.closeSync(fd);
  }
  if (n === 0) return 'it is empty (0 bytes)';
  if (head[0] === 0x08) return undefined;
  const text = head.subarray(0, n).toString('latin1');
  if (text.startsWith('version https://git-lfs')) return 'it is a Git LFS pointer, not the model (use the media/"raw" download URL)';
  if (/^\s*</.test(text)) return 'it is an HTML page, not an ONNX model (a login or error page?)';
  if (/^\s*[{[]/.test(text)) return 'it is JSON/text, not an ONNX model';
  if (text.startsWith('PK\x03\x04')) return 'it is a zip archive (e.g. a PyTorch checkpoint), not an ONNX model';
  if (text.startsWith('\x1f\x8b')) return 'it is gzip-compressed; decompress it and pass the .onnx file with --url';
  return 'it does not start like an ONNX model (a ModelProto begins with its ir_version)';
}
