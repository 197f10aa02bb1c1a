/**
 * `graft import <model.json> [--out model.onnx]`: converts a TensorFlow.js layers or graph model (or an nsfwjs
 * bundle) to ONNX and writes a model.json-style sidecar (labels, preprocessing, feature cut) beside it, so
 * `graft predict`, `graft train` and `Network.load` can use it directly.
 */
import fs from 'node:fs';
import path from 'node:path';
import { type Command, InvalidArgumentError, Option } from 'commander';
import { CliError, emit, note } from '../context.js';

/** Options of `graft import`. */
export interface ImportCliOptions {
  out?: string;
  mean?: number[];
  std?: number[];
  scale?: number;
  resize?: 'crop' | 'stretch' | 'pad';
  labels?: string;
  outputs?: 'classifier' | 'keras';
}

/** What `graft import` reports (also its `--json` output). */
export interface ImportReport {
  source: string;
  out: string;
  sidecar: string;
  nodes: number;
  parameters: number;
  inputs: { name: string; shape: (string | number | null)[] | null }[];
  outputs: { name: string; shape: (string | number | null)[] | null }[];
  preprocess?: unknown;
  labels?: string[];
  cut?: string;
}

function numbers(flag: string): (v: string) => number[] {
  return (v) => {
    const out = v.split(',').map((s) => Number(s.trim()));
    if (out.length === 0 || out.some((x) => !Number.isFinite(x)))
      throw new InvalidArgumentError(`${flag} takes numbers separated by commas, e.g. 0.5,0.5,0.5.`);
    return out;
  };
}

/** Registers `graft import`. */
export function register(program: Command): void {
  program
    .command('import')
    .description('convert a TensorFlow.js model (model.json + shards, or nsfwjs:<MobileNetV2|MobileNetV2Mid|InceptionV3>) to ONNX with a sidecar')
    .argument('<model>', 'TensorFlow.js model.json (layers or graph model), its folder, nsfwjs model.min.js, or nsfwjs:<name>')
    .option('-o, --out <file.onnx>', 'output file (default: <model folder>/<name>.onnx; the sidecar is <name>.json beside it)')
    .addOption(new Option('--mean <values>', 'per-channel mean subtracted after scaling, e.g. 0.485,0.456,0.406 (default 0)').argParser(numbers('--mean')))
    .addOption(new Option('--std <values>', 'per-channel standard deviation, e.g. 0.229,0.224,0.225 (default 1)').argParser(numbers('--std')))
    .addOption(
      new Option('--scale <n>', 'raw pixels (0–255) are divided by this first (default 255: model takes [0, 1]; 1 if it starts with Rescaling)').argParser(
        (v) => numbers('--scale')(v)[0]!,
      ),
    )
    .addOption(new Option('--resize <policy>', 'how images are fitted to the input size').choices(['stretch', 'crop', 'pad']))
    .option('--labels <file|list>', 'class names: a JSON array file, a text file with one per line, or a comma-separated list')
    .addOption(
      new Option('--outputs <style>', 'classifier: logits/probabilities/features like a graft export; keras: Keras output names').choices([
        'classifier',
        'keras',
      ]),
    )
    .action(async (model: string, opts: ImportCliOptions, cmd: Command) => {
      const report = await runImport(model, opts, (m) => note(cmd, m));
      emit(cmd, report, () => formatImport(report));
    });
}

/** Converts `model` and writes the ONNX file and its sidecar. */
export async function runImport(model: string, opts: ImportCliOptions, log: (m: string) => void = () => {}): Promise<ImportReport> {
  const [{ loadAnyModel, guessPreprocess, setPreprocessMetadata }, { saveModel }, { atomicWrite }, { graftVersion }] = await Promise.all([
    import('../../import/index.js'),
    import('../../onnx/io.js'),
    import('../../util/atomic-write.js'),
    import('../../util/version.js'),
  ]);
  if (model.endsWith('.onnx'))
    throw new CliError(`${model} is already an ONNX model; graft import converts TensorFlow.js models (model.json). Use it directly.`);
  const m = (() => {
    try {
      return loadAnyModel(model, { outputs: opts.outputs });
    } catch (e) {
      throw new CliError((e as Error).message);
    }
  })();
  const out = outputPath(model, opts.out);
  const sidecar = path.join(path.dirname(out), `${path.basename(out, '.onnx')}.json`);
  const inputFile = path.resolve(model);
  if (path.resolve(sidecar) === inputFile || path.resolve(out) === inputFile)
    throw new CliError(
      `Writing ${out} would overwrite the input ${model} (its sidecar is ${sidecar}). Pass another --out, e.g. ${path.join(path.dirname(out), 'converted.onnx')}.`,
    );
  // what the importer recorded (nsfwjs, Teachable Machine) is the default; flags override it field by field
  const current = m.metadata['graft.preprocess']
    ? (JSON.parse(m.metadata['graft.preprocess']) as {
        scale?: number;
        resize?: 'crop' | 'stretch' | 'pad';
        cropFraction?: number;
        mean?: number[];
        std?: number[];
      })
    : {};
  let preprocess: unknown;
  try {
    const cfg = guessPreprocess(m, {
      mean: opts.mean ?? current.mean,
      std: opts.std ?? current.std,
      scale: opts.scale ?? current.scale,
      resize: opts.resize ?? current.resize,
      cropFraction: current.cropFraction,
    });
    if (cfg) setPreprocessMetadata(m, cfg);
    else if (opts.mean || opts.std || opts.scale !== undefined)
      log('note: the model input is not an RGB/grayscale image of known size; --mean/--std/--scale ignored');
    preprocess = cfg;
  } catch (e) {
    throw new CliError(`${(e as Error).message.replace(/\n/g, ' ')} (from --mean/--std/--scale)`);
  }
  let labels = m.metadata['graft.labels'] ? (JSON.parse(m.metadata['graft.labels']) as string[]) : undefined;
  if (opts.labels) labels = readLabels(opts.labels);
  const classes = m.graph.outputs.find((o) => o.name === 'probabilities' || o.name === 'logits')?.shape?.at(-1);
  if (labels && typeof classes === 'number' && labels.length !== classes)
    throw new CliError(`--labels gives ${labels.length} names but the model has ${classes} classes. Pass exactly ${classes} labels.`);
  if (labels) setPreprocessMetadata(m, undefined, labels);
  fs.mkdirSync(path.dirname(path.resolve(out)), { recursive: true });
  saveModel(m, out);
  const cut = m.metadata['graft.cut'];
  const meta = { graft: graftVersion(), source: m.metadata['graft.source'], importedFrom: model, labels, preprocess, cut };
  atomicWrite(sidecar, `${JSON.stringify(meta, null, 2)}\n`);
  const io = (v: { name: string; shape?: (string | number | null)[] }) => ({ name: v.name, shape: v.shape ?? null });
  return {
    source: model,
    out,
    sidecar,
    nodes: m.graph.nodes.length,
    parameters: m.graph.parameterCount(),
    inputs: m.graph.inputs.filter((v) => !m.graph.initializers.has(v.name)).map(io),
    outputs: m.graph.outputs.map(io),
    preprocess,
    labels,
    cut,
  };
}

/** The default output: `<folder>/<name>.onnx`, where name is the model file's stem (`.graft.onnx` if the sidecar would hit the input). */
export function outputPath(model: string, out?: string): string {
  if (out) return out.endsWith('.onnx') ? out : `${out}.onnx`;
  if (model.startsWith('nsfwjs:')) return `nsfwjs-${model.slice(7).toLowerCase()}.onnx`;
  const file = fs.existsSync(model) && fs.statSync(model).isDirectory() ? path.join(model, 'model.json') : model;
  const stem = path.basename(file).replace(/(\.min)?\.(json|js)$/, '');
  const dir = path.dirname(file);
  const plain = path.join(dir, `${stem}.onnx`);
  return path.resolve(path.join(dir, `${stem}.json`)) === path.resolve(file) ? path.join(dir, `${stem}.graft.onnx`) : plain;
}

function readLabels(v: string): string[] {
  if (fs.existsSync(v)) {
    const text = fs.readFileSync(v, 'utf8');
    try {
      const j = JSON.parse(text) as unknown;
      const arr = Array.isArray(j) ? j : (j as { labels?: unknown }).labels;
      if (Array.isArray(arr)) return arr.map(String);
    } catch {
      // not JSON: one label per line
    }
    return text
      .split(/\r?\n/)
      .map((s) => s.trim())
      .filter(Boolean);
  }
  return v.split(',').map((s) => s.trim());
}

/** Human-readable report lines. */
export function formatImport(r: ImportReport): string[] {
  const shape = (s: ImportReport['inputs'][number]['shape']) => (s ? `[${s.map((d) => d ?? '?').join(', ')}]` : '(unknown)');
  const lines = [
    `wrote ${r.out} (${r.nodes} nodes, ${r.parameters.toLocaleString('en-US')} parameters) and ${r.sidecar}`,
    ...r.inputs.map((v) => `  input   ${v.name} ${shape(v.shape)} (NCHW)`),
    ...r.outputs.map((v) => `  output  ${v.name} ${shape(v.shape)}`),
  ];
  if (r.cut) lines.push(`  cut     ${r.cut} (features for replaceHead / graft train)`);
  if (r.labels) lines.push(`  labels  ${r.labels.join(', ')}`);
  const p = r.preprocess as { size: number[]; scale: number; mean: number[]; std: number[]; resize: string } | undefined;
  if (p) lines.push(`  preprocess  ${p.size.join('x')} ${p.resize}, pixel / ${p.scale}, mean [${p.mean.join(', ')}], std [${p.std.join(', ')}]`);
  else lines.push('  preprocess  none (the input is not an image); pass --preprocess to graft predict');
  return lines;
}
