/**
 * The study-process side of the built-in objective: checks the search space against what a graft training
 * run can vary, derives the base settings from the graft config, computes the frozen backbone's features
 * once for head-only trials (through the on-disk feature cache for image files), and retrains and exports
 * the best configuration (`graft tune best --export`).
 */
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { PreprocessConfig } from '../data/preprocess.js';
import { headOnlySplit, sourceFeatures } from '../features/backbone.js';
import { withInitializers } from '../ir/model.js';
import { mlp } from '../nn/index.js';
import { type GraftConfig, loadConfig, parseConfig } from '../run/config.js';
import type { BatchSource } from '../step/batches.js';
import { Network } from '../train/network.js';
import type { TuneConfig } from './config.js';
import { type GraftObjectiveOptions, GraftTrials, KNOWN_PARAMS, PARAM_CHECKS, type TrialSettings, trialSettings } from './graft-objective.js';
import type { ObjectiveSpec } from './objective.js';
import { gridValues, type JsonValue, type SearchSpace } from './space.js';

/** Where notes and warnings go. */
export interface PrepareIo {
  note(message: string): void;
  warn(message: string): void;
}

/** The data and backbone of a graft config, loaded once per process. */
export interface FullSetup {
  cfg: GraftConfig;
  classes: string[];
  preprocess: PreprocessConfig;
  /** The backbone as configured (before any head replacement). */
  base: Network;
  cut: string;
  train: BatchSource;
  val: BatchSource;
  test?: BatchSource;
  /** The labelled data before decoding (feature extraction of image files goes through the cache). */
  data: Awaited<ReturnType<typeof import('../run/setup.js').loadRunData>>;
}

const stderrIo: PrepareIo = { note: () => {}, warn: (m) => process.stderr.write(`warning: ${m}\n`) };

/** Loads the data (train / val / test) and the backbone of a validated graft config. */
export async function loadFullSetup(config: unknown, source: string, io: PrepareIo = stderrIo): Promise<FullSetup> {
  const setup = await import('../run/setup.js');
  const cfg = parseConfig(config, source);
  const data = await setup.loadRunData(cfg, io);
  if (!data.val)
    throw new Error(
      `${source}: graft tune needs validation data to score trials; set data.val (a folder or manifest) or data.valSplit > 0 in the graft config.`,
    );
  const { net, preprocess } = await setup.buildNetwork(cfg, data.classes, { pretrain: true, mnist: data.train.kind === 'arrays', source });
  const K = data.classes.length;
  const srcOpts = { strict: cfg.run.strict, io };
  const train = await setup.makeSource(data.train, preprocess, K, { ...srcOpts, augment: cfg.train.augment });
  const val = await setup.makeSource(data.val, preprocess, K, srcOpts);
  const test = data.test ? await setup.makeSource(data.test, preprocess, K, srcOpts) : undefined;
  const cut = cfg.model.cut ?? net.cut;
  if (!cut) throw new Error(`${source}: cannot find where the backbone's features end; set model.cut (see graft inspect).`);
  return { cfg, classes: data.classes, preprocess, base: net, cut, train, val, test, data };
}

/** A fresh network for one trial: the frozen backbone with the trial's head, and `unfreeze` stages trainable. */
export function networkFor(st: FullSetup, s: TrialSettings): Network {
  const net = new Network(st.base.model.clone(), { labels: st.classes, preprocess: st.preprocess, cut: st.cut });
  net
    .freeze()
    .replaceHead(mlp(s.hidden, st.classes.length, { activation: s.activation, dropout: s.dropout, batchNorm: s.batchNorm }), { cut: st.cut, seed: s.seed });
  if (s.unfreeze === 'all') net.unfreeze();
  else if (s.unfreeze > 0) net.unfreeze({ lastStages: s.unfreeze + 1 });
  return net;
}

/** The base settings of trials from a graft config. */
export function baseSettings(cfg: GraftConfig, io: PrepareIo, spaceHasUnfreeze: boolean): TrialSettings {
  const t = cfg.train;
  const o = t.optimizer;
  let unfreeze: number | 'all' = 0;
  if (t.mode === 'last-stages') unfreeze = Math.max(0, t.lastStages - 1);
  else if (t.mode === 'full') unfreeze = 'all';
  else if (t.mode === 'fine-tune' && !spaceHasUnfreeze)
    io.note(
      'train.mode fine-tune has two phases, which graft tune does not vary: trials train the head only (add `unfreeze` to the space to fine-tune backbone stages, or set train.mode to head, last-stages or full).',
    );
  const { kind, warmup, ...rest } = t.schedule;
  return {
    optimizer: o.name,
    lr: o.lr,
    weightDecay: o.weightDecay ?? 0,
    momentum: o.momentum ?? 0.9,
    nesterov: o.nesterov,
    hidden: cfg.model.head.type === 'linear' ? [] : cfg.model.head.hidden,
    activation: cfg.model.head.activation,
    dropout: cfg.model.head.dropout,
    batchNorm: cfg.model.head.batchNorm,
    labelSmoothing: t.labelSmoothing,
    unfreeze,
    batchSize: t.batchSize,
    epochs: t.epochs,
    schedule: kind,
    warmup,
    scheduleOptions: Object.fromEntries(Object.entries(rest).filter(([, v]) => v !== undefined)) as Record<string, number>,
    clipNorm: t.clipNorm,
    seed: cfg.run.seed,
  };
}

/** Every value a parameter can take that matters for checks (all choices; the ends of numeric ranges). */
function possibleValues(space: SearchSpace, name: string): JsonValue[] {
  const p = space[name]!;
  if (p.type === 'fixed') return [p.value];
  if (p.type === 'categorical') return p.choices;
  if (p.type === 'int' && (p.high - p.low) / p.step < 1000) return gridValues(name, p);
  return [p.low, p.high];
}

/**
 * Checks a space against the built-in objective: known parameter names and valid values.
 * @throws one line per problem, naming the parameter, what is wrong and the valid names/values.
 */
export function checkGraftSpace(space: SearchSpace, where = 'space'): void {
  const problems: string[] = [];
  for (const name of Object.keys(space)) {
    if (!(name in KNOWN_PARAMS)) {
      problems.push(
        `  - ${where}.${name}: not a parameter of graft training; known parameters: ${Object.keys(KNOWN_PARAMS).join(', ')} (or use objective.module for your own).`,
      );
      continue;
    }
    for (const v of possibleValues(space, name)) {
      const bad = PARAM_CHECKS[name]!(v);
      if (bad) {
        problems.push(`  - ${where}.${name}: the value ${JSON.stringify(v)} ${bad}.`);
        break;
      }
    }
  }
  if ('hidden' in space && ('hiddenSize' in space || 'hiddenLayers' in space))
    problems.push(`  - ${where}.hidden: give either hidden (a list per trial) or hiddenSize/hiddenLayers, not both.`);
  if (problems.length) throw new Error(`The search space does not fit graft training:\n${problems.join('\n')}`);
}

/** The validated graft config of a tune config's objective. */
export function objectiveGraftConfig(tune: TuneConfig): { cfg: GraftConfig; source: string } {
  const c = tune.objective.config!;
  if (typeof c === 'string') {
    const { config, source } = loadConfig({ file: c });
    return { cfg: config, source };
  }
  const base = path.dirname(path.resolve(tune.file ?? '.'));
  const raw = structuredClone(c) as Record<string, Record<string, unknown>>;
  for (const key of ['data.train', 'data.manifest', 'data.val', 'data.test', 'model.backbone', 'run.dir']) {
    const [a, b] = key.split('.') as [string, string];
    const v = raw[a]?.[b];
    if (typeof v === 'string' && v !== 'mnist') raw[a]![b] = path.resolve(base, v);
  }
  const source = `${tune.file ?? 'tune config'} (objective.config)`;
  return { cfg: parseConfig(raw, source), source };
}

/** The module path of the built-in objective (graft-objective.ts under tsx, .js when compiled). */
export function graftObjectiveModule(): string {
  return fileURLToPath(import.meta.url).replace(/graft-prepare\.(ts|js)$/, 'graft-objective.$1');
}

/**
 * Prepares the built-in objective for a study: validates the space, and when some trials train only the
 * head (`headOnlySplit` of the head-only trial's network), computes the backbone features of the train and
 * val sets once into the feature store (graft's feature cache), where the workers read them by key.
 * (`_studyDir` is unused since the features left the study folder; kept for the callers.)
 */
export async function prepareGraftObjective(
  tune: TuneConfig,
  _studyDir: string,
  io: PrepareIo,
): Promise<{ spec: ObjectiveSpec; options: GraftObjectiveOptions; headOnly: boolean; setup?: FullSetup }> {
  checkGraftSpace(tune.space);
  const { cfg, source } = objectiveGraftConfig(tune);
  const base = baseSettings(cfg, io, 'unfreeze' in tune.space);
  if ('schedule' in tune.space && possibleValues(tune.space, 'schedule').includes('step') && !base.scheduleOptions?.stepSize)
    throw new Error(`space.schedule offers 'step', which needs train.schedule.stepSize in the graft config ${source}; add it or drop 'step'.`);
  const unfreezes = 'unfreeze' in tune.space ? possibleValues(tune.space, 'unfreeze') : [base.unfreeze];
  const options: GraftObjectiveOptions = { base, metric: tune.study.metric, config: cfg, source };
  let setup: FullSetup | undefined;
  if (unfreezes.includes(0)) setup = await loadFullSetup(cfg, source, io);
  const headNet = setup && networkFor(setup, { ...base, unfreeze: 0 });
  const split = headNet && headOnlySplit({ model: headNet.model, cut: setup!.cut, trainable: headNet.trainable, augmented: !!cfg.train.augment });
  if (setup && split) {
    const t0 = performance.now();
    const backbone = split.backbone();
    const shared = async (src: BatchSource) => ({
      ...(await sourceFeatures(backbone, src, { share: true, strict: setup.cfg.run.strict, onWarning: io.warn })).stored!,
      numClasses: setup.classes.length,
    });
    options.features = { train: await shared(setup.train), val: await shared(setup.val) };
    io.note(
      `features of ${setup.train.length} train / ${setup.val.length} val samples computed once in ${((performance.now() - t0) / 1000).toFixed(1)} s; head-only trials train on them`,
    );
  }
  // a check that the settings resolve (e.g. hiddenSize without a base head) before any worker starts
  trialSettings(base, {});
  return { spec: { module: graftObjectiveModule(), options }, options, headOnly: !unfreezes.some((u) => u !== 0), setup };
}

/**
 * Retrains a configuration to the end and returns the whole network (head-only trials: the head trained
 * on features is grafted back onto the backbone), with its validation (and test) metrics.
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
  let net = r.net;
  const st = prep.setup ?? (await loadFullSetup(prep.options.config, prep.options.source ?? 'graft config', io));
  if (r.head) {
    net = networkFor(st, trialSettings(prep.options.base, params));
    net.model = withInitializers(net.model, r.head.model.graph.initializers);
  }
  const pick = (e: { loss: number; acc: number }) => ({ loss: e.loss, acc: e.acc });
  const metrics = { val: pick(await net!.evaluate(st.val)), test: st.test ? pick(await net!.evaluate(st.test)) : undefined };
  return { net: net!, metrics };
}
