/**
 * `graft models [list]`: the model registry — known architectures, their preprocessing and how to get their
 * ONNX weights. `graft models show <name>`: one entry in full (export command, download, links).
 * `graft models fetch <name>`: puts the ONNX model into the local cache (download, local file or nsfwjs
 * conversion) and prints its path; cached models need no network.
 */
import type { Command } from 'commander';
import type { PreprocessConfig } from '../../data/preprocess.js';
import type { CacheState, FetchResult, ModelEntry } from '../../models/index.js';
import { humanBytes, parseBytes } from '../../util/bytes.js';
import { CliError, emit, note } from '../context.js';

/** One row of `graft models list` (also its `--json` output, as an array). */
export interface ModelRow {
  name: string;
  family: string;
  description: string;
  features?: number;
  preprocess: PreprocessConfig;
  /** How the weights are obtained: `download`, `nsfwjs` (converted locally), `export` (a PyTorch command) or `none`. */
  source: string;
  cache: { path: string; state: CacheState };
}

/** `graft models show --json`: the entry, its validated preprocessing and its cache state. */
export interface ModelDetails extends ModelEntry {
  resolvedPreprocess: PreprocessConfig;
  cache: { path: string; state: CacheState };
  /** For entries without a download: the command that puts an exported file into the cache. */
  fetchCommand?: string;
}

async function lib() {
  const [models, pre] = await Promise.all([import('../../models/index.js'), import('../../data/preprocess.js')]);
  return { ...models, ...pre };
}

/** Turns library errors (unknown model, bad GRAFT_REGISTRY, download failures) into one-line CLI errors. */
async function cli<T>(f: () => Promise<T> | T): Promise<T> {
  try {
    return await f();
  } catch (e) {
    throw new CliError((e as Error).message);
  }
}

/** Registers `graft models` with its subcommands `list` (the default), `show` and `fetch`. */
export function register(program: Command): void {
  const models = program
    .command('models')
    .description('the model registry: known architectures, their preprocessing, and fetching their ONNX weights into a local cache')
    .addHelpText(
      'after',
      '\nExtra entries: a JSON file named by GRAFT_REGISTRY. Cache: --dir, GRAFT_MODELS_DIR or ~/.cache/graft/models. See docs/cli/models.md.',
    );

  models
    .command('list', { isDefault: true })
    .description('list the known models with input size, crop, mean/std, interpolation and how to get their weights (default)')
    .option('--dir <folder>', 'model cache folder, to show what is cached (default: GRAFT_MODELS_DIR or ~/.cache/graft/models)')
    .argument('[subcommand...]') // only to explain a mistyped subcommand (list is the default)
    .usage('[options]')
    .action(async (extra: string[], opts: { dir?: string }, cmd: Command) => {
      if (extra.length)
        throw new CliError(`Unknown subcommand "${extra[0]}" of graft models. Use graft models [list], graft models show <name> or graft models fetch <name>.`);
      const rows = await cli(() => listModels(opts.dir));
      emit(cmd, rows, () => formatList(rows));
    });

  models
    .command('show')
    .description('everything about one model: preprocessing, export command or download (URL, size, SHA-256), links, cache state')
    .argument('<name>', 'registry name, e.g. resnet18, timm:efficientnet_b0.ra_in1k or nsfwjs:MobileNetV2')
    .option('--dir <folder>', 'model cache folder (default: GRAFT_MODELS_DIR or ~/.cache/graft/models)')
    .action(async (name: string, opts: { dir?: string }, cmd: Command) => {
      const d = await cli(() => showModel(name, opts.dir));
      emit(cmd, d, () => formatDetails(d));
    });

  models
    .command('fetch')
    .description('put a model into the cache (download + verify, copy a local export, or convert nsfwjs) and print its path')
    .argument('<name>', 'registry name (see graft models)')
    .option('--dir <folder>', 'model cache folder (default: GRAFT_MODELS_DIR or ~/.cache/graft/models)')
    .option('--url <url|file>', "fetch from here instead of the entry's download: a mirror URL or your own exported .onnx file")
    .option('--sha256 <hex>', 'expected SHA-256 of the file (default: the registry entry’s, when --url is not given)')
    .option('--force', 'fetch again even if the model is cached')
    .option('--max-size <bytes|MB|GB>', "stop a download that grows past this size (default: the entry's pinned size, else 2GB)")
    .option(
      '--mirror <url-prefix>',
      "replace the origin of the entry's download URL with this prefix (default: GRAFT_MODEL_MIRROR), for sites without internet",
    )
    .action(async (name: string, opts: { dir?: string; url?: string; sha256?: string; force?: boolean; maxSize?: string; mirror?: string }, cmd: Command) => {
      if (opts.sha256 !== undefined && !/^[0-9a-fA-F]{64}$/.test(opts.sha256))
        throw new CliError(`--sha256 must be 64 hexadecimal digits (a SHA-256 digest, e.g. from \`sha256sum file.onnx\`); got "${opts.sha256}".`);
      const maxBytes = opts.maxSize === undefined ? undefined : parseBytes(opts.maxSize);
      if (opts.maxSize !== undefined && maxBytes === undefined)
        throw new CliError(
          `--max-size must be a positive size in bytes or with a unit (KB, MB, GB; 1 MB = 1024² bytes), e.g. 500MB or 4GB; got "${opts.maxSize}".`,
        );
      const { maxSize: _, ...rest } = opts;
      const r = await runFetch(
        name,
        { ...rest, maxBytes },
        (m) => note(cmd, m),
        (m) => note(cmd, `warning: ${m}`),
      );
      note(
        cmd,
        r.cached
          ? `${r.model}: cached (${humanBytes(r.bytes)}; nothing fetched)`
          : `${r.model}: ${r.source.startsWith('nsfwjs:') ? 'converted' : 'fetched'} ${humanBytes(r.bytes)} from ${r.source}${r.sha256 ? `, sha256 ${r.sha256}` : ''}; preprocessing in ${r.sidecar}`,
      );
      emit(cmd, r, () => r.path);
    });
}

/** The rows of `graft models list`. */
export async function listModels(dir?: string): Promise<ModelRow[]> {
  const { loadRegistry, entryPreprocess, entrySource, cachePaths, cacheState, modelsDir } = await lib();
  const root = modelsDir(dir);
  return loadRegistry().map((e) => ({
    name: e.name,
    family: e.family,
    description: e.description,
    features: e.features,
    preprocess: entryPreprocess(e),
    source: entrySource(e),
    cache: { path: cachePaths(e, root).onnx, state: cacheState(e, root) },
  }));
}

/** The details of one entry (`graft models show`). */
export async function showModel(name: string, dir?: string): Promise<ModelDetails> {
  const { loadRegistry, findModel, entryPreprocess, cachePaths, cacheState, modelsDir } = await lib();
  const e = findModel(name, loadRegistry());
  const root = modelsDir(dir);
  const file = /'([^']+\.onnx)'/.exec(e.export ?? '')?.[1];
  return {
    ...e,
    resolvedPreprocess: entryPreprocess(e),
    cache: { path: cachePaths(e, root).onnx, state: cacheState(e, root) },
    ...(!e.download && !e.nsfwjs && file ? { fetchCommand: `graft models fetch ${e.name} --url ${file}` } : {}),
  };
}

/** Fetches `name` into the cache with a progress report (a bar on a terminal, JSON lines otherwise). */
export async function runFetch(
  name: string,
  opts: { dir?: string; url?: string; sha256?: string; force?: boolean; maxBytes?: number; mirror?: string },
  log: (m: string) => void = () => {},
  warnWith: (m: string) => void = log,
): Promise<FetchResult> {
  const { loadRegistry, findModel, fetchModel } = await lib();
  const { downloadProgress } = await import('../../models/resolve.js');
  const entry = await cli(() => findModel(name, loadRegistry()));
  const bar = downloadProgress(entry.name);
  try {
    return await cli(() =>
      fetchModel(entry, {
        ...opts,
        log,
        warn: warnWith,
        onStart: (_total, resumed) => {
          if (resumed) log(`${entry.name}: resuming an interrupted download at ${humanBytes(resumed)}`);
        },
        onProgress: bar.onProgress,
      }),
    );
  } finally {
    bar.done();
  }
}

function isImagenet(v: number[], ref: readonly number[]): boolean {
  return v.length === ref.length && v.every((x, i) => Math.abs(x - ref[i]!) < 1e-9);
}

/** ImageNet statistics (as in src/data/preprocess.ts, repeated so `graft --help` does not load zod). */
const IMAGENET_MEAN = [0.485, 0.456, 0.406];
const IMAGENET_STD = [0.229, 0.224, 0.225];

function meanStd(p: PreprocessConfig): string {
  if (isImagenet(p.mean, IMAGENET_MEAN) && isImagenet(p.std, IMAGENET_STD)) return 'ImageNet';
  const f = (v: number[]) => (v.every((x) => x === v[0]) ? String(+v[0]!.toFixed(4)) : v.map((x) => +x.toFixed(4)).join(','));
  return `${f(p.mean)} / ${f(p.std)}${p.scale !== 255 ? ` (÷${p.scale})` : ''}`;
}

function geometry(p: PreprocessConfig): string {
  if (p.resize !== 'crop') return p.resize;
  const pct = +(p.cropFraction * 100).toFixed(1);
  return `crop ${pct}% (${Math.floor(p.size[0] / p.cropFraction + 1e-9)})`;
}

const SOURCE_TEXT: Record<string, string> = { download: 'download', nsfwjs: 'npm nsfwjs', export: 'export (PyTorch)', none: '--url only' };

/** The table of `graft models list`. */
export function formatList(rows: ModelRow[]): string[] {
  const cells = rows.map((r) => [
    r.name,
    r.family,
    `${r.preprocess.size[0]}x${r.preprocess.size[1]}`,
    geometry(r.preprocess),
    meanStd(r.preprocess),
    r.preprocess.interpolation,
    r.features ? String(r.features) : '?',
    SOURCE_TEXT[r.source] ?? r.source,
    r.cache.state === 'cached' ? 'cached' : r.cache.state === 'stale' ? 'stale' : '',
  ]);
  const head = ['model', 'family', 'input', 'resize', 'mean / std', 'interp.', 'features', 'weights', 'cache'];
  const widths = head.map((h, i) => Math.max(h.length, ...cells.map((c) => c[i]!.length)));
  const line = (c: string[]) =>
    c
      .map((s, i) => s.padEnd(widths[i]!))
      .join('  ')
      .trimEnd();
  return [
    line(head),
    ...cells.map(line),
    '',
    'graft models show <model>: export command, download URL and checksum, links; graft models fetch <model>: cache the ONNX file.',
  ];
}

/** The text of `graft models show`. */
export function formatDetails(d: ModelDetails): string[] {
  const row = (k: string, v: string) => `  ${k.padEnd(11)}${v}`;
  const p = d.resolvedPreprocess;
  const rh = Math.floor(p.size[0] / p.cropFraction + 1e-9);
  const lines = [`${d.name}${d.aliases?.length ? ` (${d.aliases.join(', ')})` : ''} — ${d.description}`];
  const about = [d.family, d.dataset, d.classes ? `${d.classes} classes` : '', d.parameters ? `${d.parameters.toLocaleString('en-US')} parameters` : '']
    .filter(Boolean)
    .join(', ');
  lines.push(row('family', about));
  if (d.features) lines.push(row('features', `${d.features} (the inFeatures of a new head)`));
  lines.push(
    row(
      'preprocess',
      `${p.size[0]}x${p.size[1]} ${p.channels === 3 ? p.channelOrder : 'grayscale'}, ${
        p.resize === 'crop' ? `resize to ${rh} then centre-crop (${+(p.cropFraction * 100).toFixed(2)}%)` : p.resize
      }, ${p.interpolation}`,
    ),
    row('', `pixel / ${p.scale}, mean [${p.mean.join(', ')}], std [${p.std.join(', ')}]`),
  );
  if (d.nsfwjs) lines.push(row('weights', `bundled in the nsfwjs npm package; graft models fetch ${d.name} converts them (no network)`));
  if (d.download) {
    lines.push(row('download', d.download.url));
    if (d.download.size !== undefined) lines.push(row('', `${d.download.size.toLocaleString('en-US')} bytes (${humanBytes(d.download.size)})`));
    if (d.download.sha256) lines.push(row('', `sha256 ${d.download.sha256}`));
  }
  if (d.export) {
    lines.push(row('export', 'from PyTorch, keeping BatchNorm nodes for fine-tuning (TrainingMode.PRESERVE):'), `    ${d.export}`);
    if (d.fetchCommand) lines.push(row('then', d.fetchCommand));
  }
  for (const [i, l] of (d.links ?? []).entries()) lines.push(row(i ? '' : 'links', `${l.title}: ${l.url}`));
  for (const [i, n] of (d.notes ?? []).entries()) lines.push(row(i ? '' : 'notes', n));
  if (d.license) lines.push(row('license', d.license));
  lines.push(row('cache', `${d.cache.path} (${d.cache.state === 'cached' ? 'cached' : d.cache.state === 'stale' ? 'stale: fetch again' : 'not fetched'})`));
  return lines;
}
