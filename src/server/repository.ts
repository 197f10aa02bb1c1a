/**
 * The models one `graft serve` process serves: where they come from (a model file, a run folder, a registry name,
 * or a model repository folder `<name>/<version>/model.onnx`), loading each version into a runner with its
 * classifier description (labels, preprocessing, temperature from the sidecar, as `graft predict` reads them),
 * and hot reload: a repository folder is polled, a new or changed version is loaded once its files have stopped
 * changing and swapped in atomically, and the version it replaces drains before its session is released.
 */
import fs from 'node:fs';
import path from 'node:path';
import { tokenizerPath } from '../data/tokenize.js';
import { type ClassifierInfo, readClassifier } from '../train/classify.js';
import { readTextClassifier, type TextClassifierInfo } from '../train/classify-text.js';
import { ExecutorUnavailableError } from './batcher.js';
import type { HostTensor, ModelRunner, OpenRunner, RunnerOptions } from './contract.js';
import { HttpError } from './errors.js';

/** One loaded model version. */
export interface ServedModel {
  name: string;
  version: string;
  file: string;
  runner: ModelRunner;
  /** How to classify images with it; undefined when the model has no preprocessing (then `imageError` says why). */
  image?: ClassifierInfo;
  imageError?: string;
  /** How to classify texts with it: a text model (a `.tokenizer.json` beside it), tokenized server-side. */
  text?: TextClassifierInfo;
}

/** Where models come from: one file served as `name`/`version`, or a repository folder that is watched. */
export type ModelSource = { kind: 'file'; name: string; version: string; file: string } | { kind: 'repository'; dir: string };

/** A model name or version as it may appear in a URL path. */
const NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]*$/;

/**
 * Turns `graft serve` arguments into sources: an .onnx file (named `--name`, else its folder's name for
 * `model.onnx`, else the file's stem), a run folder holding model.onnx (named after the folder), a repository
 * folder (`<name>/<version>/model.onnx`), or a registry name (fetched on first use by `resolve`).
 * @throws naming the argument and what to pass instead.
 */
export async function resolveSources(
  refs: readonly string[],
  opts: { name?: string; resolve?: (ref: string) => Promise<string> } = {},
): Promise<ModelSource[]> {
  if (!refs.length) throw new Error('graft serve needs at least one model: a model.onnx file, a run folder, a model repository folder or a registry name.');
  if (opts.name !== undefined && refs.length !== 1)
    throw new Error(`--name names one model, but ${refs.length} were given; drop --name (each model is named after its folder).`);
  const out: ModelSource[] = [];
  for (const ref of refs) {
    let st: fs.Stats | undefined;
    try {
      st = fs.statSync(ref);
    } catch {
      st = undefined;
    }
    if (st?.isDirectory()) {
      const inside = path.join(ref, 'model.onnx');
      if (fs.existsSync(inside)) out.push({ kind: 'file', name: opts.name ?? path.basename(path.resolve(ref)), version: '1', file: inside });
      else {
        if (opts.name !== undefined) throw new Error(`--name cannot rename the models of repository folder ${ref}; each is named after its sub-folder.`);
        out.push({ kind: 'repository', dir: ref });
      }
      continue;
    }
    if (st) {
      if (!ref.endsWith('.onnx')) throw new Error(`${ref} is not an .onnx model; graft serve takes .onnx files (convert others with graft import).`);
      const stem = path.basename(ref, '.onnx');
      out.push({ kind: 'file', name: opts.name ?? (stem === 'model' ? path.basename(path.dirname(path.resolve(ref))) : stem), version: '1', file: ref });
      continue;
    }
    const { isModelName } = await import('../models/name.js');
    if (!isModelName(ref) || !opts.resolve)
      throw new Error(
        `${ref} is neither a file, a folder nor a registry model name; pass a model.onnx, a run folder, a repository folder or a name from \`graft models list\`.`,
      );
    const file = await opts.resolve(ref);
    if (!file.endsWith('.onnx'))
      throw new Error(
        `${ref} is converted by graft on load, not an .onnx file; convert it once with \`graft import ${ref} --out model.onnx\` and serve that file.`,
      );
    out.push({ kind: 'file', name: opts.name ?? ref.replace(/[^A-Za-z0-9_.-]/g, '-'), version: '1', file });
  }
  for (const s of out)
    if (s.kind === 'file' && !NAME.test(s.name))
      throw new Error(`Model name "${s.name}" (from ${s.file}) is not URL-safe; pass --name with letters, digits, "_", "." or "-".`);
  return out;
}

/** Options of {@link ModelRepository}. */
export interface RepositoryOptions {
  openRunner: OpenRunner;
  runner?: Omit<RunnerOptions, 'model' | 'version'>;
  /** How often repository folders are scanned for new, changed or removed versions, in ms (default 1000; 0: never). */
  pollMs?: number;
  /** One line per load, swap, unload or failure. */
  onNote?: (message: string) => void;
}

/** The versions of every served model, swapped atomically on reload. */
export class ModelRepository {
  private models = new Map<string, Map<string, ServedModel>>();
  /** Repository files seen on the last scan but not loaded yet (waiting for them to stop changing), by path → signature. */
  private pending = new Map<string, string>();
  private loadedSig = new Map<string, string>();
  private failedSig = new Map<string, string>();
  private timer?: NodeJS.Timeout;
  private scanning?: Promise<void>;
  private draining = new Set<Promise<void>>();
  private closed = false;

  constructor(
    private readonly sources: readonly ModelSource[],
    private readonly opts: RepositoryOptions,
  ) {}

  /** Loads every source (repository folders' current versions at once); starts polling. @throws when a model fails to load. */
  async load(): Promise<void> {
    for (const s of this.sources) {
      if (s.kind === 'file') {
        if (this.models.has(s.name))
          throw new Error(`Two models are named "${s.name}"; give one a different name (--name, or serve them from a repository folder).`);
        this.put(await this.open(s.name, s.version, s.file));
      } else await this.scanRepository(s.dir, true);
    }
    if (!this.size())
      throw new Error(
        `No models to serve in ${this.sources.map((s) => (s.kind === 'file' ? s.file : s.dir)).join(', ')}; a repository folder holds <name>/<version>/model.onnx.`,
      );
    const poll = this.opts.pollMs ?? 1000;
    if (poll > 0 && this.sources.some((s) => s.kind === 'repository')) {
      this.timer = setInterval(() => void this.scan(), poll);
      this.timer.unref();
    }
  }

  /** Scans repository folders once (the poller calls this; tests may too); resolves when swaps are done. */
  scan(): Promise<void> {
    if (this.closed) return Promise.resolve();
    this.scanning ??= (async () => {
      try {
        for (const s of this.sources) if (s.kind === 'repository') await this.scanRepository(s.dir, false);
      } finally {
        this.scanning = undefined;
      }
    })();
    return this.scanning;
  }

  /** The served version: `version`, or the newest (highest number) when omitted. @throws HttpError 404 naming what exists. */
  get(name: string, version?: string): ServedModel {
    const versions = this.models.get(name);
    if (!versions?.size)
      throw new HttpError(
        404,
        `No model "${name}" is served; the served models are ${
          this.names()
            .map((n) => `"${n}"`)
            .join(', ') || 'none'
        }.`,
      );
    if (version === undefined) return versions.get(newest([...versions.keys()]))!;
    const m = versions.get(version);
    if (!m) throw new HttpError(404, `Model "${name}" has no version "${version}"; its versions are ${[...versions.keys()].map((v) => `"${v}"`).join(', ')}.`);
    return m;
  }

  /**
   * Runs a request on `m`, or, when `m` was swapped out after it was looked up (its runner drains and refuses), on
   * the model that now answers the same request: the same version when the request named one, else the newest.
   * So a request that arrives during a hot reload is answered, not refused.
   */
  async infer(
    m: ServedModel,
    inputs: Record<string, HostTensor>,
    outputs: readonly string[] | undefined,
    pinned: boolean,
  ): Promise<Record<string, HostTensor>> {
    try {
      return await m.runner.infer(inputs, outputs);
    } catch (e) {
      if (!(e instanceof ExecutorUnavailableError)) throw e;
      const now = this.models.get(m.name)?.size ? this.get(m.name, pinned ? m.version : undefined) : undefined;
      if (!now || now.runner === m.runner) throw e;
      return now.runner.infer(inputs, outputs);
    }
  }

  /** Served model names, sorted. */
  names(): string[] {
    return [...this.models.keys()].filter((n) => this.models.get(n)!.size).sort();
  }

  /** The versions of `name`, oldest first. */
  versions(name: string): string[] {
    return [...(this.models.get(name)?.keys() ?? [])].sort(byVersion);
  }

  /** Every served version. */
  all(): ServedModel[] {
    return [...this.models.values()].flatMap((v) => [...v.values()]);
  }

  private size(): number {
    return this.all().length;
  }

  /** Stops polling, waits for a scan in progress, and drains every runner (graceful shutdown). */
  async close(): Promise<void> {
    this.closed = true;
    clearInterval(this.timer);
    await this.scanning;
    const all = this.all();
    this.models.clear();
    await Promise.all([...all.map((m) => m.runner.drain()), ...this.draining]);
  }

  private async open(name: string, version: string, file: string): Promise<ServedModel> {
    // a text model (tokenizer beside it) is read as one, so a broken tokenizer fails the load like a broken model
    const text = fs.existsSync(tokenizerPath(file)) ? readTextClassifier(file).info : undefined;
    const padInputs = text ? { padInputs: { [text.input]: text.padId } } : {};
    const runner = await this.opts.openRunner(file, { ...this.opts.runner, ...padInputs, model: name, version });
    if (text)
      return { name, version, file, runner, text, imageError: `it is a text model: send texts, {"texts": ["..."]}, to /classify or BYTES to "${text.input}".` };
    let image: ClassifierInfo | undefined;
    let imageError: string | undefined;
    try {
      image = readClassifier(file).info;
    } catch (e) {
      imageError = (e as Error).message;
    }
    return { name, version, file, runner, image, imageError };
  }

  /** Swaps `m` in; the version it replaces drains in the background. */
  private put(m: ServedModel): void {
    let versions = this.models.get(m.name);
    if (!versions) this.models.set(m.name, (versions = new Map()));
    const old = versions.get(m.version);
    versions.set(m.version, m);
    if (old) this.retire(old);
  }

  private retire(m: ServedModel): void {
    const p = m.runner.drain().catch((e) => this.opts.onNote?.(`draining ${m.name} version ${m.version} failed: ${(e as Error).message}`));
    this.draining.add(p);
    void p.finally(() => this.draining.delete(p));
  }

  private async scanRepository(dir: string, initial: boolean): Promise<void> {
    const found = new Map<string, { name: string; version: string; sig: string }>();
    for (const name of safeList(dir)) {
      if (!NAME.test(name) || !isDir(path.join(dir, name))) continue;
      for (const version of safeList(path.join(dir, name))) {
        if (!/^\d+$/.test(version)) continue;
        const file = path.join(dir, name, version, 'model.onnx');
        const sig = signature(file);
        if (sig) found.set(file, { name, version, sig });
      }
    }
    for (const [file, f] of found) {
      if (this.loadedSig.get(file) === f.sig || this.failedSig.get(file) === f.sig) continue;
      // load a file only once it is unchanged since the last scan: a copy in progress is not read half-written
      if (!initial && this.pending.get(file) !== f.sig) {
        this.pending.set(file, f.sig);
        continue;
      }
      this.pending.delete(file);
      const replacing = this.loadedSig.has(file);
      try {
        const m = await this.open(f.name, f.version, file);
        if (signature(file) !== f.sig) {
          void m.runner.drain().catch(() => {}); // changed while loading: the next scans load the new bytes
          continue;
        }
        this.put(m);
        this.loadedSig.set(file, f.sig);
        this.failedSig.delete(file);
        this.opts.onNote?.(`${replacing ? 'reloaded' : 'loaded'} model "${f.name}" version ${f.version} from ${file}`);
      } catch (e) {
        if (initial) throw e;
        this.failedSig.set(file, f.sig);
        this.opts.onNote?.(`could not load ${file} (still serving what was there before): ${(e as Error).message}`);
      }
    }
    // versions whose model.onnx is gone: unload and drain
    for (const file of [...this.loadedSig.keys()]) {
      if (found.has(file) || !file.startsWith(path.join(dir, path.sep))) continue;
      this.loadedSig.delete(file);
      const [name, version] = path.relative(dir, file).split(path.sep);
      const versions = this.models.get(name!);
      const m = versions?.get(version!);
      if (!m) continue;
      versions!.delete(version!);
      if (!versions!.size) this.models.delete(name!);
      this.retire(m);
      this.opts.onNote?.(`unloaded model "${name}" version ${version} (its model.onnx is gone)`);
    }
  }
}

function newest(versions: string[]): string {
  return versions.sort(byVersion).at(-1)!;
}

function byVersion(a: string, b: string): number {
  const x = Number(a);
  const y = Number(b);
  return Number.isFinite(x) && Number.isFinite(y) ? x - y : a.localeCompare(b);
}

function safeList(dir: string): string[] {
  try {
    return fs.readdirSync(dir);
  } catch {
    return [];
  }
}

function isDir(p: string): boolean {
  try {
    return fs.statSync(p).isDirectory();
  } catch {
    return false;
  }
}

/** size:mtime of a model file, its sidecar and its tokenizer; undefined when the model file is missing. */
function signature(file: string): string | undefined {
  try {
    const st = fs.statSync(file);
    let side = '';
    for (const f of [file.replace(/\.onnx$/, '.json'), tokenizerPath(file)]) {
      try {
        const j = fs.statSync(f);
        side += `${j.size}:${j.mtimeMs};`;
      } catch {
        // no sidecar or tokenizer
      }
    }
    return `${st.ino}:${st.size}:${st.mtimeMs}|${side}`;
  } catch {
    return undefined;
  }
}
