/**
 * Search spaces of `graft tune`: one distribution per hyper-parameter (uniform, log-uniform, int,
 * categorical, or a fixed value), validated with zod so that every mistake gives one clear message
 * naming the parameter (`space.lr: low (1) is greater than high (0.001); swap them.`).
 *
 * Numeric parameters have an *internal* scale on which samplers work: the logarithm for log-uniform
 * (and `int` with `log: true`), the value itself otherwise. Integers occupy [low − ½, high + ½] there,
 * so every integer owns an equal slice.
 */
import { createHash } from 'node:crypto';
import { z } from 'zod';
import { Rng } from '../tensor.js';

/** A JSON value (what categorical choices and fixed values may be). */
export type JsonValue = string | number | boolean | null | JsonValue[] | { [k: string]: JsonValue };

/** One parameter's distribution. */
export type ParamSpec =
  | { type: 'uniform'; low: number; high: number; grid?: number[] }
  | { type: 'log-uniform'; low: number; high: number; grid?: number[] }
  | { type: 'int'; low: number; high: number; step: number; log: boolean; grid?: number[] }
  | { type: 'categorical'; choices: JsonValue[] }
  | { type: 'fixed'; value: JsonValue };

/** Parameter name → distribution. */
export type SearchSpace = Record<string, ParamSpec>;

/** One trial's parameter values. */
export type Params = Record<string, JsonValue>;

const num = z.number().refine(Number.isFinite, 'must be a finite number');
const grid = z.array(num).min(1, 'grid is empty; list at least one value to try, or remove the key').optional();
const json: z.ZodType<JsonValue> = z.lazy(() => z.union([z.string(), z.number(), z.boolean(), z.null(), z.array(json), z.record(z.string(), json)]));

const paramSchema = z.union([
  z.discriminatedUnion('type', [
    z.strictObject({ type: z.literal('uniform'), low: num, high: num, grid }),
    z.strictObject({ type: z.literal('log-uniform'), low: num, high: num, grid }),
    z.strictObject({
      type: z.literal('int'),
      low: z.number().int('must be an integer'),
      high: z.number().int('must be an integer'),
      step: z.number().int('must be an integer').positive('must be ≥ 1').default(1),
      log: z.boolean().default(false),
      grid: z.array(z.number().int('grid values of an int parameter must be integers')).min(1, 'grid is empty').optional(),
    }),
    z.strictObject({ type: z.literal('categorical'), choices: z.array(json) }),
  ]),
  // a plain value (or list) is a fixed parameter
  z.union([z.string(), z.number(), z.boolean(), z.null(), z.array(json)]).transform((value): ParamSpec => ({ type: 'fixed', value })),
]);

/** Problems of one (structurally valid) parameter, as "how to fix it" messages; the first one is reported. */
function semanticIssues(p: ParamSpec): string[] {
  const out: string[] = [];
  if (p.type === 'fixed') return out;
  if (p.type === 'categorical') {
    if (p.choices.length === 0) out.push('choices is empty; list at least one value (e.g. choices: [32, 64]).');
    const seen = new Set<string>();
    for (const c of p.choices) {
      const k = canonicalJson(c);
      if (seen.has(k)) out.push(`choices lists ${k} twice; remove the duplicate.`);
      seen.add(k);
    }
    return out;
  }
  if (p.low > p.high) out.push(`low (${p.low}) is greater than high (${p.high}); swap them.`);
  const isLog = p.type === 'log-uniform' || (p.type === 'int' && p.log);
  if (isLog && p.low <= 0)
    out.push(
      `a log-scaled range must be positive, but low is ${p.low}; use low > 0 (e.g. ${p.type === 'int' ? 1 : '1e-5'})${p.type === 'int' ? ' or log: false' : ', or type: uniform'}.`,
    );
  if (p.grid) {
    const bad = p.grid.filter((v) => v < p.low || v > p.high);
    if (bad.length) out.push(`grid values ${bad.join(', ')} lie outside [low, high] = [${p.low}, ${p.high}]; widen the range or fix the grid.`);
  }
  if (p.type === 'int' && (p.high - p.low) % p.step !== 0) out.push(`high − low (${p.high - p.low}) is not a multiple of step (${p.step}); adjust high.`);
  return out;
}

/** The zod schema of a search space (a mapping of parameter names to distributions). */
export const spaceSchema = z
  .record(z.string().regex(/^[A-Za-z_][\w.-]*$/, 'parameter names use letters, digits, "_", "-" and "."'), paramSchema)
  .superRefine((space, ctx) => {
    if (Object.keys(space).length === 0)
      ctx.addIssue({ code: 'custom', message: 'the search space is empty; add at least one parameter (e.g. lr: { type: log-uniform, low: 1e-4, high: 1 }).' });
    for (const [name, p] of Object.entries(space)) {
      const issues = semanticIssues(p);
      if (issues.length) ctx.addIssue({ code: 'custom', path: [name], message: issues[0]! });
    }
  });

/**
 * Validates a raw search space.
 * @param where prefix of error messages (e.g. "tune.yaml: space").
 * @throws one line per bad parameter, each saying what is wrong and how to fix it.
 */
export function parseSpace(raw: unknown, where = 'space'): SearchSpace {
  const r = spaceSchema.safeParse(raw);
  if (r.success) return r.data;
  throw new Error(`Invalid search space:\n${formatIssues(r.error.issues, where)}`);
}

/** Valid keys of each part of a tune config, for "unknown key" messages (keyed by the first path segment; space entries by "space"). */
const VALID_KEYS: Record<string, string> = {
  space: 'type, low, high, step, log, grid (numeric) or type, choices (categorical)',
  study: 'name, dir, trials, timeout, workers, threadsPerWorker, seed, metric, direction',
  sampler: 'name (tpe, random, grid); tpe: startup, gamma, candidates, priorWeight',
  pruner: 'name (none, median, asha); median: startup, warmup, interval; asha: minResource, reductionFactor, minEarlyStoppingRate',
  objective: 'config, module, options',
  '': 'study, sampler, pruner, space, objective',
};

/** Formats zod issues as "  - <where>.<path>: <message>" lines, one per key (the first issue of a key wins). */
export function formatIssues(issues: readonly z.core.$ZodIssue[], where: string): string {
  const byPath = new Map<string, string>();
  for (const i of issues) {
    const parts = [where, ...i.path.map(String)].filter(Boolean);
    const key = parts.join('.');
    if (byPath.has(key)) continue;
    const section = where === 'space' ? 'space' : String(i.path[0] ?? '');
    byPath.set(key, explain(i, section));
  }
  return [...byPath].map(([k, m]) => `  - ${k || '(top level)'}: ${m}`).join('\n');
}

/** A plain-language message for one zod issue. */
function explain(i: z.core.$ZodIssue, section: string): string {
  if (i.code === 'unrecognized_keys')
    return `unknown key${i.keys.length > 1 ? 's' : ''} ${i.keys.map((k) => `"${k}"`).join(', ')}; valid keys: ${VALID_KEYS[section] ?? VALID_KEYS['']}.`;
  if (i.code === 'invalid_type') return /received undefined/.test(i.message) ? `missing; give ${article(i.expected)}.` : `must be ${article(i.expected)}.`;
  if (i.code === 'invalid_union') {
    const note = (i as { note?: string }).note;
    if (section === 'space') return unionHint(i);
    if (note === 'No matching discriminator') return `unknown or missing name; valid: ${VALID_KEYS[section] ?? 'see docs/cli/tune.md'}.`;
  }
  return i.message;
}

function article(t: string): string {
  const name: Record<string, string> = { object: 'a mapping', record: 'a mapping', array: 'a list', int: 'an integer' };
  return name[t] ?? (/^[aeiou]/.test(t) ? `an ${t}` : `a ${t}`);
}

function unionHint(i: z.core.$ZodIssue): string {
  if ((i as { note?: string }).note === 'No matching discriminator')
    return 'unknown or missing "type"; use uniform, log-uniform, int or categorical (or a plain value for a fixed parameter).';
  const errors = (i as { errors?: z.core.$ZodIssue[][] }).errors ?? [];
  for (const branch of errors) {
    const first = branch[0];
    if (!first) continue;
    if (first.code === 'invalid_union' && (first as { note?: string }).note === 'No matching discriminator')
      return 'unknown or missing "type"; use uniform, log-uniform, int or categorical (or a plain value for a fixed parameter).';
    if (first.path.length) return `${first.path.join('.')}: ${explain(first, 'space')}`;
    if (first.code === 'unrecognized_keys') return explain(first, 'space');
  }
  return 'must be a distribution such as { type: log-uniform, low: 1e-4, high: 1 }, { type: categorical, choices: [...] }, or a plain value.';
}

/** JSON with object keys sorted at every level, so equal values give equal strings. */
export function canonicalJson(value: unknown): string {
  return JSON.stringify(value, (_k, v: unknown) =>
    v && typeof v === 'object' && !Array.isArray(v)
      ? Object.fromEntries(Object.entries(v as Record<string, unknown>).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)))
      : v,
  );
}

/** A stable fingerprint of a search space (sha256 of its canonical JSON, grids excluded: they only matter to the grid sampler). */
export function spaceHash(space: SearchSpace): string {
  const stripped = Object.fromEntries(Object.entries(space).map(([k, p]) => [k, 'grid' in p ? { ...p, grid: undefined } : p]));
  return createHash('sha256').update(canonicalJson(stripped)).digest('hex').slice(0, 16);
}

/** Human-readable differences between two spaces ("lr: log-uniform [0.0001, 1] → log-uniform [0.001, 1]"). */
export function diffSpaces(a: SearchSpace, b: SearchSpace): string[] {
  const out: string[] = [];
  for (const k of new Set([...Object.keys(a), ...Object.keys(b)])) {
    const pa = a[k];
    const pb = b[k];
    if (!pa) out.push(`${k}: added (${describeParam(pb!)})`);
    else if (!pb) out.push(`${k}: removed (was ${describeParam(pa)})`);
    else if (describeParam(pa) !== describeParam(pb)) out.push(`${k}: ${describeParam(pa)} → ${describeParam(pb)}`);
  }
  return out;
}

/** A short description such as "log-uniform [0.0001, 1]" or "categorical [16, 32]". */
export function describeParam(p: ParamSpec): string {
  switch (p.type) {
    case 'fixed':
      return `fixed ${canonicalJson(p.value)}`;
    case 'categorical':
      return `categorical ${canonicalJson(p.choices)}`;
    case 'int':
      return `int [${p.low}, ${p.high}]${p.step !== 1 ? ` step ${p.step}` : ''}${p.log ? ' log' : ''}`;
    default:
      return `${p.type} [${p.low}, ${p.high}]`;
  }
}

/** A numeric parameter. */
export type NumericSpec = Extract<ParamSpec, { low: number }>;

/** True for uniform, log-uniform and int parameters. */
export function isNumeric(p: ParamSpec): p is NumericSpec {
  return p.type === 'uniform' || p.type === 'log-uniform' || p.type === 'int';
}

/** True when the parameter is sampled on a log scale. */
export function isLog(p: NumericSpec): boolean {
  return p.type === 'log-uniform' || (p.type === 'int' && p.log);
}

/** The internal-scale interval of a numeric parameter (log for log scales; integers widened by ½ on each side, in step units). */
export function internalBounds(p: NumericSpec): [number, number] {
  if (p.type === 'int') {
    const h = p.step / 2;
    return p.log ? [Math.log(Math.max(p.low - h, p.low / 2)), Math.log(p.high + h)] : [p.low - h, p.high + h];
  }
  return isLog(p) ? [Math.log(p.low), Math.log(p.high)] : [p.low, p.high];
}

/** Value → internal scale. */
export function toInternal(p: NumericSpec, v: number): number {
  return isLog(p) ? Math.log(v) : v;
}

/** Internal scale → a valid value (clamped to [low, high]; integers rounded to the step grid). */
export function fromInternal(p: NumericSpec, u: number): number {
  let v = isLog(p) ? Math.exp(u) : u;
  if (p.type === 'int') v = p.low + Math.round((v - p.low) / p.step) * p.step;
  return Math.min(p.high, Math.max(p.low, v));
}

/** The internal-scale interval that rounds to integer `v` (for probability masses of int parameters). */
export function intCell(p: Extract<ParamSpec, { type: 'int' }>, v: number): [number, number] {
  const [lo, hi] = internalBounds(p);
  const h = p.step / 2;
  const a = p.log ? Math.log(Math.max(v - h, Math.exp(lo))) : v - h;
  const b = p.log ? Math.log(v + h) : v + h;
  return [Math.max(lo, a), Math.min(hi, b)];
}

/** Index of `value` among a categorical parameter's choices (by canonical JSON), or -1. */
export function choiceIndex(p: Extract<ParamSpec, { type: 'categorical' }>, value: unknown): number {
  const k = canonicalJson(value);
  return p.choices.findIndex((c) => canonicalJson(c) === k);
}

/** A draw from the parameter's prior (uniform on the internal scale, or uniform over the choices). */
export function samplePrior(p: ParamSpec, rng: Rng): JsonValue {
  if (p.type === 'fixed') return p.value;
  if (p.type === 'categorical') return p.choices[rng.int(p.choices.length)]!;
  const [lo, hi] = internalBounds(p);
  return fromInternal(p, lo + rng.next() * (hi - lo));
}

/** A seeded generator for (seed, stream): independent, reproducible streams per trial. */
export function streamRng(seed: number, stream: number): Rng {
  let h = (Math.imul(seed >>> 0, 0x9e3779b1) ^ Math.imul((stream + 1) >>> 0, 0x85ebca77)) >>> 0;
  h = Math.imul(h ^ (h >>> 16), 0x7feb352d) >>> 0;
  h = Math.imul(h ^ (h >>> 15), 0x846ca68b) >>> 0;
  return new Rng((h ^ (h >>> 16)) >>> 0);
}

/** The values a parameter takes in an exhaustive grid. @throws when a continuous parameter has no `grid`. */
export function gridValues(name: string, p: ParamSpec): JsonValue[] {
  if (p.type === 'fixed') return [p.value];
  if (p.type === 'categorical') return p.choices;
  if (p.grid) return [...new Set(p.grid)];
  if (p.type === 'int') {
    const n = (p.high - p.low) / p.step + 1;
    if (n <= 1000) return Array.from({ length: n }, (_, i) => p.low + i * p.step);
  }
  throw new Error(
    `space.${name}: the grid sampler needs a finite list of values, but ${name} is ${describeParam(p)}; add grid: [v1, v2, ...] to it (or make it categorical).`,
  );
}

/** Every combination of the parameters' grid values, in a fixed order (first parameter varies slowest). */
export function gridOf(space: SearchSpace): Params[] {
  let out: Params[] = [{}];
  for (const [name, p] of Object.entries(space)) {
    const vals = gridValues(name, p);
    out = out.flatMap((o) => vals.map((v) => ({ ...o, [name]: v })));
  }
  return out;
}

/** Checks that `params` fits `space` (every parameter present and within its distribution); returns the first problem or undefined. */
export function checkParams(space: SearchSpace, params: Params): string | undefined {
  for (const [name, p] of Object.entries(space)) {
    if (!(name in params)) return `parameter ${name} is missing`;
    const v = params[name];
    if (p.type === 'fixed') {
      if (canonicalJson(v) !== canonicalJson(p.value)) return `${name} = ${canonicalJson(v)} differs from the fixed value ${canonicalJson(p.value)}`;
    } else if (p.type === 'categorical') {
      if (choiceIndex(p, v) < 0) return `${name} = ${canonicalJson(v)} is not one of ${canonicalJson(p.choices)}`;
    } else if (typeof v !== 'number' || v < p.low || v > p.high) return `${name} = ${canonicalJson(v)} is outside [${p.low}, ${p.high}]`;
  }
  return undefined;
}
