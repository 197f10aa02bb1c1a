/**
 * The study-process side of the built-in objective: checks the search space against the one config schema
 * (params.ts), computes the frozen backbone's features once into the feature store for trials that train
 * the head (head mode, and fine-tune's first phase), and retrains and exports the best configuration
 * (`graft tune best --export`).
 */
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { PreprocessConfig } from '../data/preprocess.js';
import { headOnlySplit, sourceFeatures } from '../features/backbone.js';
import { findCut } from '../ir/surgery.js';
import { isModelName } from '../models/name.js';
import { type GraftConfig, loadConfig, parseConfig } from '../run/config.js';
import { withNewHead } from '../run/setup.js';
import type { BatchSource } from '../step/batches.js';
import type { Network } from '../train/network.js';
import type { TuneConfig } from './config.js';
import { type GraftObjectiveOptions, GraftTrials } from './graft-objective.js';
import type { ObjectiveSpec } from './objective.js';
import { checkGraftSpace, possibleValues, trialConfig } from './params.js';
import type { JsonValue } from './space.js';

/** Where notes and warnings go. */
export interface PrepareIo {
  note(message: string): void;
  warn(message: string): void;
}

/** The backbone of a graft config (before any head replacement), with its classes, preprocessing and cut. */
export interface BackboneSetup {
  cfg: GraftConfig;
  classes: string[];
  preprocess: PreprocessConfig;
  /** The backbone as configured (before any head replacement). */
  base: Network;
  cut: string;
}

/** The data and backbone of a graft config, loaded once per process. */
export interface FullSetup extends BackboneSetup {
  train: BatchSource;
  val: BatchSource;
  test?: BatchSource;
  /** The labelled data before decoding (feature extraction of image files goes through the cache). */
  data: Awaited<ReturnType<typeof import('../run/setup.js').loadRunData>>;
}

const stderrIo: PrepareIo = { note: () => {}, warn: (m) => process.stderr.write(`warning: ${m}\n`) };

/** Loads the backbone of a validated graft config for `classes` (no data is read: a worker's head-mode trials need no more). */
export async function loadBackbone(cfg: GraftConfig, classes: string[], source: string): Promise<BackboneSetup> {
  const setup = await import('../run/setup.js');
  const { net, preprocess } = await setup.buildNetwork(cfg, classes, { pretrain: true, mnist: cfg.data.train === 'mnist', source });
  if ('tokenizer' in preprocess)
    throw new Error(`${source}: graft tune does not take a text encoder (model.encoder) yet; tune an image backbone, or train text with graft train.`);
  // where replaceHead would graft the head when the model names no cut
  let cut = cfg.model.cut ?? net.cut;
  try {
    cut ??= findCut(net.model).value;
  } catch {}
  if (!cut) throw new Error(`${source}: cannot find where the backbone's features end; set model.cut (see graft inspect).`);
  return { cfg, classes, preprocess, base: net, cut };
}

/** Loads the data (train / val / test) and the backbone of a validated graft config. */
export async function loadFullSetup(cfg: GraftConfig, source: string, io: PrepareIo = stderrIo): Promise<FullSetup> {
  const setup = await import('../run/setup.js');
  const data = await setup.loadRunData(cfg, io);
  if (!data.val)
    throw new Error(
      `${source}: graft tune needs validation data to score trials; set data.val (a folder or manifest) or data.valSplit > 0 in the graft config.`,
    );
  const bb = await loadBackbone(cfg, data.classes, source);
  const K = data.classes.length;
  const srcOpts = { strict: cfg.run.strict, io };
  const train = await setup.makeSource(data.train, bb.preprocess, K, { ...srcOpts, augment: cfg.train.augment });
  const val = await setup.makeSource(data.val, bb.preprocess, K, srcOpts);
  const test = data.test ? await setup.makeSource(data.test, bb.preprocess, K, srcOpts) : undefined;
  return { ...bb, train, val, test, data };
}

/** A fresh network for one trial: the frozen backbone with the config's head (its recipe sets what trains). */
export function networkFor(st: BackboneSetup, cfg: GraftConfig): Network {
  return withNewHead(st.base, cfg, st.classes, st.cut);
}

/** The train modes the trials of a space can have (from train.mode, or the short name unfreeze). */
function trialModes(tune: TuneConfig, baseRaw: Record<string, unknown>, source: string): Set<string> {
  const modes = new Set<string>();
  const names = Object.keys(tune.space).filter((n) => n === 'train.mode' || n === 'unfreeze');
  if (!names.length) return new Set([trialConfig(baseRaw, {}, source).train.mode]);
  for (const n of names) for (const v of possibleValues(tune.space, n)) modes.add(trialConfig(baseRaw, { [n]: v }, source).train.mode);
  return modes;
}

/** The graft config of a tune config's objective: validated, and raw (paths resolved) for the trials' overrides. */
export function objectiveGraftConfig(tune: TuneConfig): { cfg: GraftConfig; raw: Record<string, unknown>; source: string } {
  const c = tune.objective.config!;
  if (typeof c === 'string') {
    const { config, raw, source } = loadConfig({ file: c });
    return { cfg: config, raw, source };
  }
  const base = path.dirname(path.resolve(tune.file ?? '.'));
  const raw = structuredClone(c) as Record<string, Record<string, unknown>>;
  for (const key of ['data.train', 'data.manifest', 'data.val', 'data.test', 'model.backbone', 'run.dir']) {
    const [a, b] = key.split('.') as [string, string];
    const v = raw[a]?.[b];
    // a registry name (nsfwjs:MobileNetV2, mobilenetv2) is no path, as in a graft config file
    if (typeof v === 'string' && v !== 'mnist' && !(key === 'model.backbone' && isModelName(v, base))) raw[a]![b] = path.resolve(base, v);
  }
  const source = `${tune.file ?? 'tune config'} (objective.config)`;
  return { cfg: parseConfig(raw, source), raw, source };
}

/** The module path of the built-in objective (graft-objective.ts under tsx, .js when compiled). */
export function graftObjectiveModule(): string {
  return fileURLToPath(import.meta.url).replace(/graft-prepare\.(ts|js)$/, 'graft-objective.$1');
}

/**
 * Prepares the built-in objective for a study: checks the space against the schema, and when some trials
 * train the head on a frozen backbone (head mode, or fine-tune's first phase), computes the backbone
 * features of the train and val sets once into the feature store (graft's feature cache), where the
 * workers read them by key (head mode) or `Network.fit` finds them (fine-tune), so no trial decodes an image.
 * (`_studyDir` is unused since the features left the study folder; kept for the callers.)
 */
export async function prepareGraftObjective(
  tune: TuneConfig,
  _studyDir: string,
  io: PrepareIo,
): Promise<{ spec: ObjectiveSpec; options: GraftObjectiveOptions; headOnly: boolean; setup?: FullSetup }> {
  const { cfg, raw, source } = objectiveGraftConfig(tune);
  checkGraftSpace(tune.space, raw, source);
  const modes = trialModes(tune, raw, source);
  const options: GraftObjectiveOptions = { config: raw, source, metric: tune.study.metric };
  let setup: FullSetup | undefined;
  if (modes.has('head') || modes.has('fine-tune')) setup = await loadFullSetup(cfg, source, io);
  const headNet = setup && networkFor(setup, cfg);
  const split = headNet && headOnlySplit({ model: headNet.model, cut: setup!.cut, trainable: headNet.trainable, augmented: !!cfg.train.augment });
  if (setup && split) {
    const t0 = performance.now();
    const backbone = split.backbone();
    const shared = async (src: BatchSource) => ({
      ...(await sourceFeatures(backbone, src, { share: true, strict: setup.cfg.run.strict, onWarning: io.warn })).stored!,
      numClasses: setup.classes.length,
    });
    options.features = { train: await shared(setup.train), val: await shared(setup.val), classes: setup.classes };
    io.note(
      `features of ${setup.train.length} train / ${setup.val.length} val samples computed once in ${((performance.now() - t0) / 1000).toFixed(1)} s; trials train the head on them`,
    );
  }
  return { spec: { module: graftObjectiveModule(), options }, options, headOnly: modes.size === 1 && modes.has('head'), setup };
}

/**
 * Retrains a configuration to the end through the same phase loop as its trial and returns the trained
 * network with its validation (and test) metrics.
 */
export async function trainForExport(
  tune: TuneConfig,
  studyDir: string,
  params: Record<string, JsonValue>,
  io: PrepareIo,
): Promise<{ net: Network; metrics: { val: { loss: number; acc: number }; test?: { loss: number; acc: number } } }> {
  const prep = await prepareGraftObjective(tune, studyDir, io);
  const trials = new GraftTrials(prep.options);
  const r = await trials.run(params);
  const st = r.headOnly && prep.setup ? prep.setup : await trials.setupOf(r.config);
  const net = r.net;
  const pick = (e: { loss: number; acc: number }) => ({ loss: e.loss, acc: e.acc });
  const metrics = { val: pick(await net.evaluate(st.val)), test: st.test ? pick(await net.evaluate(st.test)) : undefined };
  return { net, metrics };
}
