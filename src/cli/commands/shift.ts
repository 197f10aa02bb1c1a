/**
 * `graft shift --source A --target B [--backbone m]`: how far two domains are apart in a backbone's feature
 * space (proxy A-distance, MMD with a permutation p-value, class-free summaries), and whether adaptation is
 * likely needed. The measures and the advice are the library's `shift()` (src/choose/shift.ts); this surface
 * loads the domains, prints and writes JSON. See docs/cli/shift.md.
 */
import type { Command } from 'commander';
import type { ShiftReport } from '../../choose/shift.js';
import type { Model } from '../../ir/model.js';
import { atomicWrite } from '../../util/atomic-write.js';
import { CliError, emit, globals, note, positiveInt } from '../context.js';

/** Registers `graft shift`. */
export function register(program: Command): void {
  program
    .command('shift')
    .description("measure how far two domains are apart in a backbone's feature space, and whether to adapt (graft adapt)")
    .requiredOption('--source <data>', 'the source domain: an image folder (read recursively), a manifest, mnist, mnist-style-shift or fashion-mnist')
    .requiredOption('--target <data>', 'the target domain (same kinds as --source); the same data as --source compares two disjoint halves')
    .option('--backbone <model>', 'compare in this model’s features (an .onnx file or a registry name; cut as graft train cuts); default: the input pixels')
    .option(
      '--encoder <name|encoder.onnx>',
      'compare texts in this text encoder’s embeddings (tfidf, glove, glove-sif, or an encoder .onnx); --source/--target are then text tables or .txt folders',
    )
    .option('--text-column <name>', "with --encoder: the column holding the text (default 'text')")
    .option('--cut <value>', 'feature value to cut the backbone at (default: its recorded cut, else the input of its final classifier)')
    .option('--samples <n>', 'images per domain (a seeded subsample; default 1000)', positiveInt('--samples'))
    .option('--mmd-samples <n>', 'images per domain in the MMD test (default 500)', positiveInt('--mmd-samples'))
    .option('--permutations <n>', 'permutations of the MMD test (default 200)', positiveInt('--permutations'))
    .option('--image-size <n>', 'without --backbone: decode image folders at n×n (default 32; built-ins are 28)', positiveInt('--image-size'))
    .option('--channels <n>', 'without --backbone: 1 (grey) or 3 (RGB; default)', positiveInt('--channels'))
    .option('--out <file.json>', 'also write the report as JSON to this file')
    .addHelpText('after', '\nSee docs/cli/shift.md.')
    .action(async (opts: ShiftFlags, cmd: Command) => runShift(opts, cmd));
}

interface ShiftFlags {
  source: string;
  target: string;
  backbone?: string;
  encoder?: string;
  textColumn?: string;
  cut?: string;
  samples?: number;
  mmdSamples?: number;
  permutations?: number;
  imageSize?: number;
  channels?: number;
  out?: string;
}

async function runShift(o: ShiftFlags, cmd: Command): Promise<void> {
  const g = globals(cmd);
  const seed = g.seed ?? 0;
  const { shift } = await import('../../choose/shift.js');
  if (o.samples !== undefined && o.samples < 8) throw new CliError(`--samples must be at least 8 images per domain (got ${o.samples}).`);
  if (o.channels !== undefined && o.channels !== 1 && o.channels !== 3) throw new CliError(`--channels must be 1 or 3 (got ${o.channels}).`);
  if (o.backbone && (o.imageSize !== undefined || o.channels !== undefined))
    throw new CliError(
      '--image-size/--channels set how folders are decoded without --backbone; with --backbone the model’s preprocessing applies. Remove them.',
    );
  const warn = (m: string) => note(cmd, `warning: ${m}`);
  if (o.encoder && (o.backbone || o.imageSize !== undefined || o.channels !== undefined))
    throw new CliError('--encoder compares texts; --backbone, --image-size and --channels are for images. Remove them, or drop --encoder.');
  if (o.textColumn && !o.encoder) throw new CliError('--text-column applies to texts: add --encoder.');
  const samples = o.samples ?? 1000;
  const same = o.source === o.target;
  let domains: { source: import('../../step/batches.js').BatchSource; target: import('../../step/batches.js').BatchSource; unit: string; backbone?: Model };
  if (o.encoder) domains = await textDomains(o, warn, (m) => note(cmd, m));
  else domains = await imageDomains(o, cmd, warn, samples);
  const { source, target, unit } = domains;
  note(
    cmd,
    `source ${o.source}: ${source.length} ${unit}; target ${o.target}: ${same ? 'the same data (two disjoint halves are compared)' : `${target.length} ${unit}`}`,
  );
  const report = await shift({
    source,
    target,
    backbone: domains.backbone,
    cut: o.cut,
    samples,
    mmdSamples: o.mmdSamples,
    permutations: o.permutations,
    seed,
  });
  const doc = { source: o.source, target: o.target, backbone: o.backbone ?? null, ...(o.encoder ? { encoder: o.encoder } : {}), seed, ...report };
  if (o.out) atomicWrite(o.out, `${JSON.stringify(doc, null, 2)}\n`);
  emit(cmd, doc, () => [...formatShift(report, unit), ...(o.out ? ['', `wrote ${o.out}`] : [])]);
}

/** The two text domains, tokenized for the encoder (tfidf fits its IDF on the source texts). */
async function textDomains(o: ShiftFlags, warn: (m: string) => void, onNote: (m: string) => void) {
  const { loadTextDomain } = await import('../../choose/domains.js');
  const { resolveTextEncoder } = await import('../../models/text-registry.js');
  const load = (ref: string, flag: string) => loadTextDomain(ref, { flag, textColumn: o.textColumn, warn });
  const a = await load(o.source, '--source');
  const b = o.source === o.target ? a : await load(o.target, '--target');
  const enc = await resolveTextEncoder(o.encoder!, { trainTexts: a.texts, onNote });
  const source = a.source(enc.tokenizer);
  const target = b === a ? source : b.source(enc.tokenizer);
  return { source, target, unit: 'texts', backbone: enc.model };
}

/** The two image domains, decoded with the backbone's preprocessing (or --image-size/--channels without one). */
async function imageDomains(o: ShiftFlags, cmd: Command, warn: (m: string) => void, samples: number) {
  const g = globals(cmd);
  const seed = g.seed ?? 0;
  const { isShiftBuiltin, loadDomain } = await import('../../choose/domains.js');
  const { parsePreprocessConfig } = await import('../../data/preprocess.js');
  const { Network } = await import('../../train/network.js');
  const { MNIST_ARRAYS_PREPROCESS } = await import('../../adapt/sources.js');
  let net: InstanceType<typeof Network> | undefined;
  if (o.backbone) {
    const { resolveModelRef } = await import('../../models/resolve.js');
    net = Network.load(await resolveModelRef(o.backbone, { onNote: (m) => note(cmd, m), onWarning: warn, progress: !g.quiet && !g.json }));
    if (!net.preprocess)
      throw new CliError(
        `--backbone ${o.backbone} has no preprocessing config (no .json sidecar or graft.preprocess metadata); export it with graft train, or add the sidecar.`,
      );
  }
  const builtinOnly = isShiftBuiltin(o.source) || isShiftBuiltin(o.target);
  const size = o.imageSize ?? 32;
  const pre = parsePreprocessConfig(
    net?.preprocess ??
      (builtinOnly && o.imageSize === undefined && o.channels === undefined
        ? MNIST_ARRAYS_PREPROCESS
        : { size: [size, size], channels: o.channels ?? 3, resize: 'stretch', mean: [0.5], std: [0.5] }),
    o.backbone ? `the preprocessing of ${o.backbone}` : 'the shift preprocessing',
  );
  const same = o.source === o.target;
  const load = (ref: string, flag: string) => loadDomain(ref, pre, { flag, warn, maxImages: same ? 2 * samples : samples, seed });
  const source = await load(o.source, '--source');
  const target = same ? source : await load(o.target, '--target');
  return { source, target, unit: 'images', backbone: net?.model };
}

/** The report as text: a table of the measures, then the advice. */
export function formatShift(r: ShiftReport, unit = 'images'): string[] {
  const p = r.mmd.pValue;
  return [
    `features: ${r.features.from}, ${r.features.dims} values; ${r.samples.source} source and ${r.samples.target} target ${unit}`,
    '',
    '| measure | value | reads |',
    '|---|---|---|',
    `| proxy A-distance | ${r.aDistance.aDistance.toFixed(3)} | 0 = indistinguishable, 2 = separable (domain classifier error ${(100 * r.aDistance.error).toFixed(1)} % on ${r.aDistance.heldOut} held-out images) |`,
    `| MMD² (unbiased) | ${r.mmd.mmd2.toExponential(3)} | Gaussian kernel σ = ${r.mmd.sigma.toPrecision(3)} (median heuristic), ${r.mmd.samples} images per domain |`,
    `| MMD p-value | ${p.toFixed(4)} | ${r.mmd.permutations} permutations; small = the domains differ |`,
    `| mean distance | ${r.summary.meanDistance.toFixed(3)} | ‖μs − μt‖ / mean source feature norm |`,
    `| covariance gap | ${r.summary.covRelative.toFixed(3)} | ‖Cs − Ct‖ / ‖Cs‖ (CORAL distance ${r.summary.coral.toExponential(3)}) |`,
    `| norm ratio | ${r.summary.normRatio.toFixed(3)} | mean target feature norm / source |`,
    '',
    `shift: ${r.level}`,
    ...r.advice,
  ];
}
