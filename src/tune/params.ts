/**
 * What a parameter of `graft tune`'s built-in objective means: a key of the one config schema
 * (`train.optimizer.lr`, `model.head.hidden`, `train.mode`, …), or one of the short names of {@link PARAM_ALIASES}
 * that tune.yaml files have always used (`lr`, `hidden`, `unfreeze`, …). A trial's config is the base graft
 * config with the trial's values set at those keys, validated by `parseConfig`: the schema is the only
 * judge of a value, and its errors name the parameter.
 */
import { type GraftConfig, getPath, parseConfig, setPath } from '../run/config.js';
import { canonicalJson, gridValues, type JsonValue, type Params, type SearchSpace } from './space.js';

/** A short name: the config key it sets, or how it sets several. */
interface Alias {
  /** The config key it sets (the value as it is). */
  key?: string;
  /** Or: the config keys and values a value sets (`base` is the base config, parsed). */
  expand?(v: JsonValue, params: Params, base: GraftConfig): Record<string, unknown>;
  /** The config key it decides, for names without `key` (two parameters must not set one key). */
  sets?: string;
  /** A check of the value before the schema's (for names that are no config value). */
  check?(v: JsonValue): string | undefined;
}

/** The short names of tune parameters, each with the config key(s) it sets. The one table. */
export const PARAM_ALIASES: Record<string, Alias> = {
  lr: { key: 'train.optimizer.lr' },
  weightDecay: { key: 'train.optimizer.weightDecay' },
  momentum: { key: 'train.optimizer.momentum' },
  optimizer: {
    // momentum and nesterov apply to sgd only: a trial that picks adam or adamw drops them from the base
    expand: (v) =>
      v === 'sgd' ? { 'train.optimizer.name': v } : { 'train.optimizer.name': v, 'train.optimizer.momentum': undefined, 'train.optimizer.nesterov': undefined },
  },
  hidden: { key: 'model.head.hidden', expand: (v) => ({ 'model.head.type': 'mlp', 'model.head.hidden': v }) },
  hiddenSize: { expand: (_v, params, base) => hiddenOf(params, base) },
  hiddenLayers: { expand: (_v, params, base) => hiddenOf(params, base) },
  activation: { key: 'model.head.activation' },
  dropout: { key: 'model.head.dropout' },
  labelSmoothing: { key: 'train.labelSmoothing' },
  batchSize: { key: 'train.batchSize' },
  epochs: { key: 'train.epochs' },
  schedule: { key: 'train.schedule.kind' },
  warmup: { key: 'train.schedule.warmup' },
  unfreeze: {
    sets: 'train.mode',
    check: (v) => (v === 'all' || (Number.isInteger(v) && (v as number) >= 0) ? undefined : "must be an integer ≥ 0 or 'all'"),
    // 0: the head alone; k: the head and the last k stages; 'all': everything (train.mode full)
    expand: (v) =>
      v === 'all' ? { 'train.mode': 'full' } : v === 0 ? { 'train.mode': 'head' } : { 'train.mode': 'last-stages', 'train.lastStages': (v as number) + 1 },
  },
  adapt: {
    check: (v) =>
      v === 'none' || v === null
        ? undefined
        : "is reserved for domain-adaptation methods, which graft tune's built-in objective cannot train yet; use 'none' (or remove adapt/adaptLambda from the space, or tune them with your own objective.module)",
    expand: () => ({}),
  },
  adaptLambda: { check: (v) => (typeof v === 'number' && v >= 0 ? undefined : 'must be a number ≥ 0'), expand: () => ({}) },
};

/** `hiddenSize` × `hiddenLayers`: the hidden sizes they compose, the base head's where one is not set. */
function hiddenOf(params: Params, base: GraftConfig): Record<string, unknown> {
  const h = base.model.head.type === 'linear' ? [] : base.model.head.hidden;
  const size = Number(params.hiddenSize ?? h[0] ?? 0);
  const layers = Number(params.hiddenLayers ?? (size > 0 ? Math.max(1, h.length) : 0));
  return { 'model.head.type': 'mlp', 'model.head.hidden': size > 0 ? Array.from({ length: layers }, () => size) : [] };
}

/** The config key a parameter sets (itself for a config key). */
export function configKeyOf(name: string): string {
  return PARAM_ALIASES[name]?.key ?? PARAM_ALIASES[name]?.sets ?? name;
}

/** True when the name is a config key of the schema (a section and a key, e.g. train.optimizer.lr). */
function looksLikeConfigKey(name: string): boolean {
  return /^(data|model|train|run)\.[\w.]+$/.test(name);
}

/** The config keys and values a trial's parameters set. @throws naming the parameter when a value is no value of it. */
export function trialOverrides(params: Params, base: GraftConfig): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [name, v] of Object.entries(params)) {
    const a = PARAM_ALIASES[name];
    if (!a) {
      if (!looksLikeConfigKey(name)) throw new Error(unknownParam(name));
      out[name] = v;
      continue;
    }
    const bad = a.check?.(v);
    if (bad) throw new Error(`parameter ${name} = ${JSON.stringify(v)} ${bad}.`);
    Object.assign(out, a.expand ? a.expand(v, params, base) : { [a.key!]: v });
  }
  return out;
}

function unknownParam(name: string): string {
  return (
    `parameter ${name}: not a parameter of graft training; known parameters: ${Object.keys(PARAM_ALIASES).join(', ')} (short names), ` +
    'or a config key such as train.optimizer.lr or model.head.dropout (docs/config.md), or use objective.module for your own.'
  );
}

/**
 * The config of a trial: the raw base config with the parameters' values set at their keys, validated by the
 * one schema.
 * @throws naming the parameter(s) and the schema's reason when the result is no valid config.
 */
export function trialConfig(baseRaw: Record<string, unknown>, params: Params, source = 'graft config'): GraftConfig {
  const raw = structuredClone(baseRaw);
  // graft train's default mode, auto, is a search of its own: a trial trains one recipe, tune's default fine-tune
  if (getPath(raw, 'train.mode') === undefined) setPath(raw, 'train.mode', TUNE_DEFAULT_MODE);
  const base = parseConfig(raw, source);
  const overrides = trialOverrides(params, base);
  for (const [k, v] of Object.entries(overrides)) setPath(raw, k, v);
  const flagOf = new Map<string, string>();
  for (const name of Object.keys(params)) {
    const keys = PARAM_ALIASES[name]?.key ? [PARAM_ALIASES[name].key!] : Object.keys(trialOverrides({ [name]: params[name]! }, base));
    for (const k of keys.length ? keys : [name]) flagOf.set(k, `tune parameter ${name} = ${canonicalJson(params[name])}`);
  }
  const cfg = parseConfig(raw, `${source} with the trial's parameters`, flagOf);
  if (cfg.train.mode === 'auto')
    throw new Error(
      `${source}: train.mode auto is graft train's own search and cannot be a tune trial's recipe; set train.mode (or the tune parameter) to head, last-stages, full or fine-tune.`,
    );
  return cfg;
}

/** The recipe of a trial whose config names no train.mode (graft train's default, auto, is a search itself). */
export const TUNE_DEFAULT_MODE = 'fine-tune';

/** Every value a parameter can take that matters for checks (all choices; the ends of numeric ranges). */
export function possibleValues(space: SearchSpace, name: string): JsonValue[] {
  const p = space[name]!;
  if (p.type === 'fixed') return [p.value];
  if (p.type === 'categorical') return p.choices;
  if (p.type === 'int' && (p.high - p.low) / p.step < 1000) return gridValues(name, p);
  return [p.low, p.high];
}

/**
 * Checks a space against the built-in objective before a study: every parameter is a config key or a short
 * name, and each of its values (all choices; the ends of ranges) set on the base config passes the schema.
 * @throws one line per problem, naming the parameter, the value and the schema's reason.
 */
export function checkGraftSpace(space: SearchSpace, baseRaw: Record<string, unknown>, source = 'graft config', where = 'space'): void {
  const problems: string[] = [];
  for (const name of Object.keys(space)) {
    if (!PARAM_ALIASES[name] && !looksLikeConfigKey(name)) {
      problems.push(`  - ${where}.${name}: ${unknownParam(name).replace(/^parameter \S+: /, '')}`);
      continue;
    }
    for (const v of possibleValues(space, name)) {
      try {
        trialConfig(baseRaw, { [name]: v }, source);
      } catch (e) {
        const reason = (e as Error).message
          .split('\n')
          .filter((l) => l.startsWith('  - ') || l.startsWith('parameter '))
          .map((l) => l.replace(/^ {2}- /, '').replace(/^parameter \S+ = \S+ /, ''))
          .join('; ');
        problems.push(`  - ${where}.${name}: the value ${JSON.stringify(v)} does not fit the graft config: ${reason}`);
        break;
      }
    }
  }
  if ('hidden' in space && ('hiddenSize' in space || 'hiddenLayers' in space))
    problems.push(`  - ${where}.hidden: give either hidden (a list per trial) or hiddenSize/hiddenLayers, not both.`);
  const keys = new Map<string, string>();
  for (const name of Object.keys(space)) {
    const k = configKeyOf(name);
    if (keys.has(k)) problems.push(`  - ${where}.${name}: sets ${k}, as ${where}.${keys.get(k)} does; keep one of them.`);
    keys.set(k, name);
  }
  if (problems.length) throw new Error(`The search space does not fit graft training:\n${problems.join('\n')}`);
}
