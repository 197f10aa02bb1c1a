/** `graft inspect <model.onnx>`: what a model takes and gives, what it is made of, and where its features end. */
import fs from 'node:fs';
import type { Command } from 'commander';
import type { Dim, ValueInfo } from '../../ir/graph.js';
import type { Model } from '../../ir/model.js';
import { humanBytes } from '../../util/bytes.js';
import { emit } from '../context.js';

/** Everything `graft inspect` reports (this is also the `--json` output). */
export interface InspectReport {
  file: string;
  /** Size of the file (0 for a built-in import such as nsfwjs:MobileNetV2). */
  fileBytes: number;
  irVersion: number;
  opset: number;
  otherOpsets: { domain: string; version: number }[];
  producer: string;
  producerVersion: string;
  graphName: string;
  inputs: { name: string; dtype: string; shape: Dim[] | null }[];
  outputs: { name: string; dtype: string; shape: Dim[] | null }[];
  nodeCount: number;
  /** Node count per op type, most frequent first. */
  ops: { op: string; count: number }[];
  /** Scalars in float32 weight tensors. */
  parameters: number;
  initializers: { count: number; bytes: number };
  metadata: Record<string, string>;
  /** The `graft.preprocess` metadata, parsed and validated, when present. */
  preprocess?: { config?: unknown; description?: string; error?: string };
  /**
   * The feature cut by the one rule train and import use (ir/surgery.ts featureCut): `rule` says which part chose
   * it ('given': the sidecar's "cut"; 'recorded': the model's graft.cut metadata; 'classifier': the input of the
   * final Gemm/MatMul). `node`/`op`: the first node reading it. Or why there is none.
   */
  cut?: { value: string; rule: string; node: string; op: string; shape: Dim[] | null } | { error: string };
  /** Parameter stages (for "unfreeze the last N stages"), or why they could not be derived. */
  stages?: { name: string; params: number; count: number }[] | { error: string };
  /** Every node, with --nodes. */
  nodes?: { name: string; op: string; inputs: string[]; outputs: string[] }[];
}

/** Registers `graft inspect`. */
export function register(program: Command): void {
  program
    .command('inspect')
    .description('show a model: opset, producer, inputs/outputs with shapes, ops, parameters, metadata, feature cut and stages')
    .argument('<model>', 'an .onnx file, a TensorFlow.js model.json or nsfwjs:MobileNetV2 / nsfwjs:InceptionV3')
    .option('--nodes', 'also list every node (name, op, inputs → outputs)')
    .action(async (file: string, opts: { nodes?: boolean }, cmd: Command) => {
      const report = await inspectModel(file, opts);
      emit(cmd, report, () => formatReport(report));
    });
}

/** Loads `file` and builds its {@link InspectReport}. */
export async function inspectModel(file: string, opts: { nodes?: boolean } = {}): Promise<InspectReport> {
  const { modelHeader } = await import('../../onnx/io.js');
  const { loadAnyModel } = await import('../../import/index.js');
  const { readSidecar } = await import('../../train/sidecar.js');
  const model = loadAnyModel(file); // the same loading as Network.load, so the cut below is the one train uses
  const sidecarCut = fs.existsSync(file) && fs.statSync(file).isFile() ? readSidecar(file, model)?.cut : undefined;
  const g = model.graph;
  const header = modelHeader(model);
  const counts = new Map<string, number>();
  for (const n of g.nodes) {
    const key = n.domain ? `${n.domain}.${n.op}` : n.op;
    counts.set(key, (counts.get(key) ?? 0) + 1);
  }
  let bytes = 0;
  for (const t of g.initializers.values()) bytes += t.data.byteLength;
  const io = (v: ValueInfo) => ({ name: v.name, dtype: v.dtype, shape: v.shape ?? null });
  const report: InspectReport = {
    file,
    fileBytes: fs.existsSync(file) ? fs.statSync(file).size : 0,
    irVersion: model.irVersion,
    opset: model.opset,
    otherOpsets: model.otherOpsets,
    producer: model.producer,
    producerVersion: header?.producerVersion ?? '',
    graphName: g.name,
    inputs: g.inputs.map(io),
    outputs: g.outputs.map(io),
    nodeCount: g.nodes.length,
    ops: [...counts].map(([op, count]) => ({ op, count })).sort((a, b) => b.count - a.count || a.op.localeCompare(b.op)),
    parameters: g.parameterCount(),
    initializers: { count: g.initializers.size, bytes },
    metadata: { ...model.metadata },
  };
  const pre = model.metadata['graft.preprocess'];
  if (pre !== undefined) report.preprocess = await describePreprocessing(pre, file);
  Object.assign(report, await describeStructure(model, sidecarCut));
  if (opts.nodes) report.nodes = g.nodes.map((n) => ({ name: n.name, op: n.op, inputs: n.inputs, outputs: n.outputs }));
  return report;
}

async function describePreprocessing(json: string, file: string): Promise<NonNullable<InspectReport['preprocess']>> {
  let raw: unknown;
  try {
    raw = JSON.parse(json);
  } catch (e) {
    return { error: `metadata "graft.preprocess" is not valid JSON (${(e as Error).message})` };
  }
  try {
    const { parsePreprocessConfig, describePreprocess } = await import('../../data/preprocess.js');
    const cfg = parsePreprocessConfig(raw, `"graft.preprocess" metadata of ${file}`);
    return { config: raw, description: describePreprocess(cfg) };
  } catch (e) {
    return { config: raw, error: (e as Error).message.replace(/\s*\n\s*/g, ' ') };
  }
}

/**
 * Extension point: structure found by graph surgery (src/ir/surgery.ts) — the feature cut and the
 * parameter stages. Add further analyses here; each must fail soft (report `{ error }`), never abort inspect.
 */
async function describeStructure(model: Model, sidecarCut: string | undefined): Promise<Pick<InspectReport, 'cut' | 'stages'>> {
  const out: Pick<InspectReport, 'cut' | 'stages'> = {};
  const { featureCut, stages } = await import('../../ir/surgery.js');
  try {
    const c = featureCut(model, sidecarCut);
    out.cut = { value: c.value, rule: CUT_RULES[c.rule], node: c.consumer?.name ?? '', op: c.consumer?.op ?? '', shape: c.dims ?? null };
  } catch (e) {
    out.cut = { error: (e as Error).message };
  }
  try {
    out.stages = stages(model).map((s) => ({ name: s.name, params: s.params.length, count: s.count }));
  } catch (e) {
    out.stages = { error: (e as Error).message };
  }
  return out;
}

const CUT_RULES = { given: 'the sidecar\'s "cut"', recorded: 'recorded in the model (graft.cut)', classifier: 'input of the final classifier' } as const;

/** Human-readable rendering of a report. */
export function formatReport(r: InspectReport): string[] {
  const shape = (s: Dim[] | null) => (s ? `[${s.map((d) => (d === null ? '?' : d)).join(', ')}]` : '(rank unknown)');
  const width = Math.max(...[...r.inputs, ...r.outputs].map((v) => v.name.length), 4);
  const io = (v: InspectReport['inputs'][number]) => `${v.name.padEnd(width)}  ${v.dtype} ${shape(v.shape)}`;
  const row = (k: string, v: string) => `  ${k.padEnd(11)}${v}`;
  const lines = [
    `${r.file}  (${r.fileBytes > 0 ? humanBytes(r.fileBytes) : 'imported on load'})`,
    row('producer', `${r.producer || '(unknown)'}${r.producerVersion ? ` ${r.producerVersion}` : ''}`),
    row('format', `ONNX IR ${r.irVersion}, opset ${r.opset}${r.otherOpsets.map((o) => `, ${o.domain} ${o.version}`).join('')}`),
    ...r.inputs.map((v, i) => row(i ? '' : 'inputs', io(v))),
    ...r.outputs.map((v, i) => row(i ? '' : 'outputs', io(v))),
    row('nodes', `${r.nodeCount}: ${r.ops.map((o) => `${o.op} ${o.count}`).join(', ')}`),
    row('parameters', `${r.parameters.toLocaleString('en-US')} (${r.initializers.count} initializers, ${humanBytes(r.initializers.bytes)})`),
  ];
  const meta = Object.entries(r.metadata).filter(([k]) => k !== 'graft.preprocess');
  if (meta.length === 0 && !r.preprocess) lines.push(row('metadata', '(none)'));
  meta.forEach(([k, v], i) => void lines.push(row(i ? '' : 'metadata', `${k} = ${v.length > 100 ? `${v.slice(0, 97)}...` : v}`)));
  if (r.preprocess) {
    const text = r.preprocess.error ? `invalid: ${r.preprocess.error}` : (r.preprocess.description ?? '');
    text.split('\n').forEach((l, i) => void lines.push(row(i ? '' : 'preprocess', l)));
  }
  if (r.cut)
    lines.push(
      row(
        'cut',
        'error' in r.cut
          ? `none found — ${r.cut.error}`
          : `${r.cut.value} ${shape(r.cut.shape)}${r.cut.node ? ` → ${r.cut.op} "${r.cut.node}"` : ''} (${r.cut.rule})`,
      ),
    );
  if (r.stages) {
    if ('error' in r.stages) lines.push(row('stages', `unavailable — ${r.stages.error}`));
    else
      r.stages.forEach(
        (s, i) => void lines.push(row(i ? '' : 'stages', `${i + 1}. ${s.name}  ${s.count.toLocaleString('en-US')} params in ${s.params} tensors`)),
      );
  }
  if (r.nodes) {
    lines.push('', 'nodes:');
    for (const n of r.nodes) lines.push(`  ${n.name}  ${n.op}(${n.inputs.join(', ')}) → ${n.outputs.join(', ')}`);
  } else lines.push('', '(list every node with --nodes; machine-readable output with --json)');
  return lines;
}
