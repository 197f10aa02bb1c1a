/**
 * The web bundle (`graft export --web`): a static folder that classifies images in a browser on onnxruntime-web
 * with graft's exact preprocessing, or texts with graft's own tokenizer (a text model: see writeTextBundle). It holds the model (model.onnx, the graph `graft predict` runs), model.json
 * (labels, preprocessing, temperature, threshold; docs/formats.md), graft's browser code compiled to ES modules
 * (src/web/ and the pure modules it imports, under graft/), onnxruntime-web's wasm build (ort/) and a demo page
 * (index.html). Nothing is fetched from the internet: serve the folder with any static server.
 */
import fs from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parsePreprocessConfig } from '../data/preprocess.js';
import { encodeModel } from '../onnx/io.js';
import { classifierIO } from '../train/classify.js';
import { readTextClassifier } from '../train/classify-text.js';
import { Network } from '../train/network.js';
import { describeFsError } from '../util/fs-errors.js';
import type { WebBundleMeta, WebTextBundleMeta } from '../web/index.js';
import { demoPage, textDemoPage } from './web-page.js';

/** onnxruntime-web files the bundle needs: the wasm-only ES module build and its wasm binary with its loader. */
export const ORT_WEB_FILES = ['ort.wasm.min.mjs', 'ort-wasm-simd-threaded.mjs', 'ort-wasm-simd-threaded.wasm'] as const;

/** Options of {@link writeWebBundle}. */
export interface WebBundleOptions {
  /** Open-set threshold stored in model.json: a top probability below it is labelled "unknown". */
  threshold?: number;
  /** A JSON preprocessing config file to use instead of the model's (as `graft predict --preprocess`). */
  preprocessFile?: string;
  /** Replace `dir` when it already holds files (default: refuse). */
  overwrite?: boolean;
}

/** What {@link writeWebBundle} wrote. */
export interface WebBundleResult {
  dir: string;
  /** Paths relative to `dir`, sorted. */
  files: string[];
  bytes: number;
  meta: WebBundleMeta | WebTextBundleMeta;
}

/** The .onnx file of a model argument: the file itself, or `model.onnx` inside a run folder. */
export function resolveModelFile(model: string): string {
  let st: fs.Stats;
  try {
    st = fs.statSync(model);
  } catch (e) {
    throw new Error(describeFsError('read the model', model, e, 'Pass a .onnx file or a run folder written by `graft train`.'));
  }
  if (!st.isDirectory()) return model;
  const file = path.join(model, 'model.onnx');
  if (!fs.existsSync(file))
    throw new Error(`${model} is a folder without model.onnx; pass a finished run folder (graft train writes model.onnx at the end) or the .onnx file itself.`);
  return file;
}

/**
 * Writes a static web bundle for `model` (a .onnx file with its model.json sidecar, or a run folder) into `dir`.
 * The folder is built beside `dir` and renamed into place, so a failure leaves no half bundle and an existing
 * `dir` is only replaced with `overwrite`.
 * @throws when the model cannot be loaded, has no preprocessing, or `dir` holds files and `overwrite` is not set.
 */
export async function writeWebBundle(model: string, dir: string, opts: WebBundleOptions = {}): Promise<WebBundleResult> {
  const file = resolveModelFile(model);
  if (fs.existsSync(dir) && fs.readdirSync(dir).length > 0 && !opts.overwrite)
    throw new Error(`${dir} already holds files; choose an empty or new folder for the web bundle, or pass --overwrite to replace it.`);
  if (opts.threshold !== undefined && !(opts.threshold >= 0 && opts.threshold <= 1))
    throw new Error(`threshold ${opts.threshold} is not a probability; give a number from 0 to 1.`);
  const net = Network.load(file);
  if (net.text) return writeTextBundle(file, net, dir, opts);
  const preprocess = parsePreprocessConfig(...preprocessSource(net, file, opts.preprocessFile));
  const io = classifierIO(net.model, file, preprocess);
  const labels = net.labels ?? (io.classes !== undefined ? Array.from({ length: io.classes }, (_, i) => String(i)) : undefined);
  if (!labels) throw new Error(`Model ${file} has no labels and its output "${io.output}" has no fixed class count; add "labels" to its model.json sidecar.`);
  if (io.classes !== undefined && labels.length !== io.classes)
    throw new Error(`Model ${file} outputs ${io.classes} classes but its labels list ${labels.length}; fix "labels" in its model.json sidecar.`);
  const meta: WebBundleMeta = {
    format: 'graft-web',
    version: 1,
    model: 'model.onnx',
    input: io.input,
    output: io.output,
    softmax: io.softmax,
    labels: [...labels],
    preprocess,
    temperature: net.temperature ?? 1,
    ...(opts.threshold !== undefined ? { threshold: opts.threshold } : {}),
    ort: { module: `ort/${ORT_WEB_FILES[0]}`, wasmPaths: 'ort/' },
    source: { model: path.basename(file), exportedAt: new Date().toISOString() },
  };
  return writeBundle(dir, meta, [
    ['model.onnx', encodeModel(net.model)],
    ['index.html', demoPage(meta)],
  ]);
}

/**
 * The bundle of a text model: the model, its tokenizer description (model.tokenizer.json, which graft's browser
 * tokenizer reads), `@huggingface/tokenizers` bundled by esbuild into vendor/ for a Hugging Face tokenizer, and a
 * page to type texts into.
 */
async function writeTextBundle(file: string, net: Network, dir: string, opts: WebBundleOptions): Promise<WebBundleResult> {
  if (opts.preprocessFile) throw new Error(`${file} is a text model; --preprocess applies to image models. Drop it (the tokenizer beside the model is used).`);
  const { info } = readTextClassifier(file);
  if (info.labels.length === 0)
    throw new Error(`Model ${file} has no labels and its output "${info.output}" has no fixed class count; add "labels" to its model.json sidecar.`);
  const spec = info.tokenizer.spec;
  const meta: WebTextBundleMeta = {
    format: 'graft-web',
    version: 1,
    kind: 'text',
    model: 'model.onnx',
    input: info.input,
    output: info.output,
    softmax: info.softmax,
    labels: [...info.labels],
    temperature: info.temperature,
    ...(opts.threshold !== undefined ? { threshold: opts.threshold } : {}),
    tokenizer: 'model.tokenizer.json',
    ...(spec.kind === 'hf' ? { hfModule: HF_MODULE } : {}),
    ort: { module: `ort/${ORT_WEB_FILES[0]}`, wasmPaths: 'ort/' },
    source: { model: path.basename(file), exportedAt: new Date().toISOString() },
  };
  const files: [string, string | Uint8Array][] = [
    ['model.onnx', encodeModel(net.model)],
    ['model.tokenizer.json', `${JSON.stringify(spec)}\n`],
    ['index.html', textDemoPage(meta)],
  ];
  if (spec.kind === 'hf') files.push(...(await hfTokenizersModule()));
  return writeBundle(dir, meta, files);
}

/** Where a text bundle keeps `@huggingface/tokenizers`, relative to model.json. */
export const HF_MODULE = 'vendor/tokenizers.mjs';

/** `@huggingface/tokenizers` (pure JS) as one browser ES module, bundled by esbuild, with its licence. */
async function hfTokenizersModule(): Promise<[string, string][]> {
  const require = createRequire(import.meta.url);
  let esbuild: typeof import('esbuild');
  try {
    esbuild = await import('esbuild');
  } catch {
    throw new Error('esbuild is not installed, so the Hugging Face tokenizer cannot be bundled for the browser; reinstall graft (npm install).');
  }
  let entry: string;
  try {
    entry = require.resolve('@huggingface/tokenizers');
  } catch {
    throw new Error('@huggingface/tokenizers is not installed, so a Hugging Face tokenizer cannot run in the page; reinstall graft (npm install).');
  }
  // the package's browser ES build (its "browser" export), re-exported as one self-contained module
  const r = await esbuild.build({
    stdin: { contents: "export { Tokenizer } from '@huggingface/tokenizers';", resolveDir: path.dirname(fileURLToPath(import.meta.url)), loader: 'js' },
    bundle: true,
    format: 'esm',
    platform: 'browser',
    minify: true,
    write: false,
    logLevel: 'silent',
  });
  const out: [string, string][] = [[HF_MODULE, r.outputFiles[0]!.text]];
  const license = path.join(path.dirname(entry), '..', 'LICENSE');
  if (fs.existsSync(license)) out.push(['vendor/LICENSE-tokenizers', fs.readFileSync(license, 'utf8')]);
  return out;
}

/** Writes model.json, `files`, graft's browser modules and onnxruntime-web into `dir`, atomically (see writeWebBundle). */
async function writeBundle(dir: string, meta: WebBundleMeta | WebTextBundleMeta, files: [string, string | Uint8Array][]): Promise<WebBundleResult> {
  const modules = await browserModules();
  const target = path.resolve(dir);
  const tmp = `${target}.partial-${process.pid}`;
  fs.rmSync(tmp, { recursive: true, force: true });
  try {
    const put = (rel: string, data: string | Uint8Array) => {
      const p = path.join(tmp, rel);
      fs.mkdirSync(path.dirname(p), { recursive: true });
      fs.writeFileSync(p, data);
    };
    put('model.json', `${JSON.stringify(meta, null, 2)}\n`);
    for (const [rel, data] of files) put(rel, data);
    for (const [rel, code] of modules) put(path.join('graft', rel), code);
    const ortDir = ortWebDist();
    for (const f of ORT_WEB_FILES) put(path.join('ort', f), fs.readFileSync(path.join(ortDir, f)));
    const license = path.join(ortDir, '..', 'LICENSE');
    if (fs.existsSync(license)) put(path.join('ort', 'LICENSE'), fs.readFileSync(license));
    if (fs.existsSync(target)) fs.rmSync(target, { recursive: true, force: true });
    fs.renameSync(tmp, target);
  } catch (e) {
    fs.rmSync(tmp, { recursive: true, force: true });
    throw new Error(describeFsError('write the web bundle', target, e));
  }
  const listed = listFiles(target);
  const bytes = listed.reduce((s, f) => s + fs.statSync(path.join(target, f)).size, 0);
  return { dir: target, files: listed, bytes, meta };
}

function preprocessSource(net: Network, file: string, preprocessFile?: string): [unknown, string] {
  if (preprocessFile) {
    try {
      return [JSON.parse(fs.readFileSync(preprocessFile, 'utf8')), `preprocessing config ${preprocessFile}`];
    } catch (e) {
      throw new Error(`Cannot read preprocessing config ${preprocessFile}: ${(e as Error).message}. Pass a JSON file like {"size": 224, "resize": "crop"}.`);
    }
  }
  const raw = net.preprocess ?? (net.model.metadata['graft.preprocess'] ? JSON.parse(net.model.metadata['graft.preprocess']) : undefined);
  if (raw === undefined)
    throw new Error(
      `Model ${file} has no preprocessing config (neither a "preprocess" entry in its model.json sidecar nor "graft.preprocess" metadata), so the page cannot prepare images for it. Pass one with --preprocess <file.json>, e.g. {"size": 224, "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]}.`,
    );
  return [raw, `preprocessing of ${file}`];
}

/** onnxruntime-web's dist folder (installed with graft). */
function ortWebDist(): string {
  const require = createRequire(import.meta.url);
  let entry: string;
  try {
    entry = require.resolve('onnxruntime-web');
  } catch {
    throw new Error('onnxruntime-web is not installed, so the web bundle has no runtime to ship; reinstall graft (npm install) to get it.');
  }
  const dist = path.dirname(entry);
  const missing = ORT_WEB_FILES.filter((f) => !fs.existsSync(path.join(dist, f)));
  if (missing.length) throw new Error(`onnxruntime-web in ${dist} lacks ${missing.join(', ')}; reinstall it (npm install onnxruntime-web@1.30).`);
  return dist;
}

/** Relative ES module specifiers in emitted JavaScript (`import … from './x.js'`, `export … from`, `import('./x.js')`). */
function relativeImports(js: string): string[] {
  const out: string[] = [];
  for (const m of js.matchAll(/(?:\bfrom\s*|\bimport\s*\(\s*|^\s*import\s+)(['"])(\.{1,2}\/[^'"]+)\1/gm)) out.push(m[2]!);
  return out;
}

/**
 * graft's browser code as ES modules keyed by path relative to src/ (`web/index.js`, `data/pixels.js`, …), each with
 * its type declarations (`web/index.d.ts`, …): the compiled files beside this one when graft is built (dist/), else
 * the TypeScript sources compiled with the `typescript` package (development). Only modules the code imports at
 * run time are included; a package import or a type from a module left out is refused as a bug.
 */
async function browserModules(): Promise<Map<string, string>> {
  const here = fileURLToPath(import.meta.url);
  const srcRoot = path.resolve(path.dirname(here), '..');
  const built = here.endsWith('.js');
  let compile: ((code: string, name: string) => { js: string; dts: string }) | undefined;
  if (!built) {
    let ts: typeof import('typescript');
    try {
      ts = (await import('typescript')).default;
    } catch {
      throw new Error(
        'graft runs from its TypeScript sources but the typescript package is missing, so the browser code cannot be compiled; run `npm run build` (or npm install).',
      );
    }
    const compilerOptions = { module: ts.ModuleKind.ES2022, target: ts.ScriptTarget.ES2022, sourceMap: false };
    compile = (code, name) => ({
      js: ts.transpileModule(code, { fileName: name, compilerOptions }).outputText,
      dts: ts.transpileDeclaration(code, { fileName: name, compilerOptions }).outputText,
    });
  }
  const out = new Map<string, string>();
  const queue = ['web/index.js'];
  while (queue.length) {
    const rel = queue.shift()!;
    if (out.has(rel)) continue;
    const js = path.join(srcRoot, rel);
    let code: string;
    let dts: string;
    if (compile) {
      const ts = js.replace(/\.js$/, '.ts');
      ({ js: code, dts } = compile(fs.readFileSync(ts, 'utf8'), ts));
    } else {
      const noMap = (s: string) => s.replace(/\n\/\/# sourceMappingURL=.*$/, '\n');
      code = noMap(fs.readFileSync(js, 'utf8'));
      dts = noMap(fs.readFileSync(js.replace(/\.js$/, '.d.ts'), 'utf8'));
    }
    for (const text of [code, dts]) {
      const bare = /(?:\bfrom\s*|\bimport\s*\(\s*|^\s*import\s+)['"](?![./])([^'"]+)['"]/m.exec(text);
      if (bare)
        throw new Error(
          `graft's browser module ${rel} imports the package "${bare[1]}", which a static page cannot resolve (a bug in graft; please report it).`,
        );
    }
    out.set(rel, code);
    out.set(rel.replace(/\.js$/, '.d.ts'), dts);
    for (const spec of relativeImports(code)) queue.push(moduleKey(srcRoot, js, spec, rel));
  }
  // a declaration may name a type from a module the code does not import at run time: it must be shipped too
  for (const [rel, text] of out) {
    if (!rel.endsWith('.d.ts')) continue;
    for (const spec of relativeImports(text)) {
      const key = moduleKey(srcRoot, path.join(srcRoot, rel), spec, rel);
      if (!out.has(key))
        throw new Error(`graft's browser module ${rel} uses types from ${key}, which the bundle does not ship (a bug in graft; please report it).`);
    }
  }
  return out;
}

/** The src/-relative key of `spec` imported from `file`. */
function moduleKey(srcRoot: string, file: string, spec: string, rel: string): string {
  const key = path
    .relative(srcRoot, path.resolve(path.dirname(file), spec))
    .split(path.sep)
    .join('/');
  if (key.startsWith('..')) throw new Error(`graft's browser module ${rel} imports ${spec}, outside src/ (a bug in graft; please report it).`);
  return key;
}

function listFiles(dir: string, prefix = ''): string[] {
  return fs
    .readdirSync(dir, { withFileTypes: true })
    .flatMap((d) => (d.isDirectory() ? listFiles(path.join(dir, d.name), `${prefix}${d.name}/`) : [`${prefix}${d.name}`]))
    .sort();
}
