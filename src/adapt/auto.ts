/**
 * `adapt({ method: 'auto' })` / `graft adapt --method auto`: run every candidate method (and seed) through the one
 * adaptation path ({@link compareMethods} → {@link adapt} → `fit`), then pick one run with an unsupervised
 * validator that never sees target labels: SND, the mean prediction entropy or IM, each computed on the same
 * fixed sample of unlabelled target images for every candidate. The report lists every candidate's scores and
 * says why the pick won. With `ensemble: k`, the top-k candidates by the validator are exported as one model that
 * averages their softmax (src/adapt/ensemble.ts).
 */
import type { Model } from '../ir/model.js';
import { type CompareOptions, type CompareRow, compareMethods } from './compare.js';
import { assertUnlabelled, sampleIndices } from './data.js';
import { ensembleModel } from './ensemble.js';
import { METHODS, type MethodName, type MethodSpec, parseMethod } from './methods.js';
import { type AdaptResult, subsetOf } from './run.js';
import { type Scores, scoreModel } from './select.js';

/** The unsupervised validators `auto` can pick with. */
export const VALIDATORS = ['snd', 'entropy', 'im'] as const;

/** A validator: SND (higher wins), the mean target entropy (lower wins) or IM (higher wins). */
export type Validator = (typeof VALIDATORS)[number];

/** The validator's score of `s`, oriented so that higher is better. */
export function validatorScore(v: Validator, s: Pick<Scores, 'snd' | 'target_entropy' | 'target_im'>): number {
  if (v === 'snd') return s.snd;
  if (v === 'entropy') return -s.target_entropy;
  return s.target_im;
}

/** Parses a validator name; throws listing the names. */
export function parseValidator(name: string, where = 'validator'): Validator {
  const k = name.trim().toLowerCase();
  if ((VALIDATORS as readonly string[]).includes(k)) return k as Validator;
  throw new Error(`${where}: unknown validator "${name}". Use one of: ${VALIDATORS.join(', ')} (none of them reads target labels).`);
}

/** Options of {@link autoAdapt}: those of {@link compareMethods}, with the candidates in place of the methods. */
export interface AutoOptions extends Omit<CompareOptions, 'methods' | 'seeds'> {
  /** Methods to try (default: {@link defaultCandidates} of the model). */
  candidates?: (MethodName | MethodSpec)[];
  /** Seeds to try for every candidate (default [0]); each (method, seed) run is one candidate. */
  seeds?: number[];
  /** The validator that picks (default 'im': on the public shift it picked the best method on every seed, SND the worst; docs/benchmarks.md). */
  validator?: Validator;
  /**
   * Export the mean softmax of the top `ensemble` candidates by the validator as one model (default 1: the pick
   * alone). The members are whole candidate runs (method × seed); the ensemble is scored like a candidate.
   */
  ensemble?: number;
}

/** The exported ensemble: its members (best first) and its own scores on the common target sample. */
export interface AutoEnsemble {
  members: { method: MethodName; seed: number }[];
  snd: number;
  target_entropy: number;
  target_im: number;
  /** Reported only (targetEval), never used to build it. */
  target_acc?: number;
}

/** One candidate run and its validator scores (on the common target sample). */
export interface AutoCandidate {
  method: MethodName;
  seed: number;
  snd: number;
  target_entropy: number;
  target_im: number;
  /** The picking validator's score, higher = better. */
  score: number;
  /** The step of the run's own selected checkpoint (the run's `select` criterion). */
  step: number;
  /** Target accuracy of that checkpoint when `targetEval` was given: reported, never used to pick. */
  target_acc?: number;
  seconds: number;
}

/** What `auto` picked and why. */
export interface AutoReport {
  validator: Validator;
  /** Every candidate, in the order they ran. */
  candidates: AutoCandidate[];
  pick: { method: MethodName; seed: number };
  /** One sentence: the pick, its score, the runner-up, and what the other validators would pick. */
  reason: string;
  /** Target images every candidate was scored on. */
  targetSamples: number;
  /** Per-method mean ± std over seeds, as `graft adapt --compare` prints them. */
  rows: CompareRow[];
  /** Every run (models dropped). */
  runs: Omit<AdaptResult, 'model' | 'lastModel'>[];
  /** With `ensemble` > 1: the exported ensemble of the top candidates. */
  ensemble?: AutoEnsemble;
}

/** The candidates tried by default: every method, AdaBN only when the model has BatchNorm. */
export function defaultCandidates(model: Model): MethodName[] {
  const bn = model.graph.nodes.some((n) => n.op === 'BatchNormalization');
  return METHODS.filter((m) => m !== 'adabn' || bn);
}

/** Index of the best candidate under `v` (the first one on a tie). */
export function argmaxBy(candidates: Pick<AutoCandidate, 'snd' | 'target_entropy' | 'target_im'>[], v: Validator): number {
  let best = -1;
  let bestScore = -Infinity;
  candidates.forEach((c, i) => {
    const s = validatorScore(v, c);
    if (s > bestScore) {
      best = i;
      bestScore = s;
    }
  });
  return best;
}

/**
 * Runs every candidate (method × seed) and returns the run the validator picks, with the report of every
 * candidate (`auto`). Target labels are never read: the validators score predictions on a fixed sample of the
 * unlabelled target, and `targetEval` only adds reported accuracies.
 */
export async function autoAdapt(o: AutoOptions): Promise<AdaptResult & { auto: AutoReport }> {
  assertUnlabelled(o.target, 'adapt (auto)');
  const validator = o.validator ?? 'im';
  const seeds = o.seeds ?? [0];
  const k = o.ensemble ?? 1;
  if (!(Number.isInteger(k) && k >= 1))
    throw new Error(`adapt (auto): ensemble must be a positive integer (the number of top candidates to average), got ${k}.`);
  const first = typeof o.model === 'function' ? o.model(seeds[0]!) : o.model;
  const candidates = (o.candidates ?? defaultCandidates(first)).map((m) => (typeof m === 'string' ? parseMethod(m, 'candidates') : m));
  if (!candidates.length) throw new Error('adapt (auto): no candidate methods; pass e.g. candidates: ["source-only", "mcc", "dann"].');
  if (k > candidates.length * seeds.length)
    throw new Error(
      `adapt (auto): ensemble ${k} needs at least ${k} candidate runs, and ${candidates.length} method(s) × ${seeds.length} seed(s) give ${candidates.length * seeds.length}; lower ensemble or add candidates or seeds.`,
    );
  // one fixed sample of the target for every candidate, so their scores compare
  const sample = subsetOf(o.target, sampleIndices(o.target.length, o.targetSamples ?? 1000, 0));
  const scored: AutoCandidate[] = [];
  // the top-k runs so far, best first (a stable sort: the earlier run wins a tie, as in argmaxBy)
  let top: { score: number; run: AdaptResult }[] = [];
  const { rows, runs } = await compareMethods({
    ...o,
    methods: candidates,
    seeds,
    onRun: async (r) => {
      const s = await scoreModel(r.model, { targetSample: sample }); // no labels: targetSample only
      const c: AutoCandidate = {
        method: r.method,
        seed: r.seed,
        snd: s.snd,
        target_entropy: s.target_entropy,
        target_im: s.target_im,
        score: validatorScore(validator, s),
        step: r.selected.step,
        seconds: r.seconds,
      };
      if (r.selected.target_acc !== undefined) c.target_acc = r.selected.target_acc;
      scored.push(c);
      top = [...top, { score: c.score, run: r }].sort((a, b) => b.score - a.score).slice(0, k);
      await o.onRun?.(r);
    },
  });
  const pickIdx = argmaxBy(scored, validator);
  const pick = scored[pickIdx]!;
  const auto: AutoReport = {
    validator,
    candidates: scored,
    pick: { method: pick.method, seed: pick.seed },
    reason: explain(scored, pickIdx, validator),
    targetSamples: sample.length,
    rows,
    runs,
  };
  const best = top[0]!.run;
  if (k === 1) return { ...best, auto };
  // the top-k as one model: the mean of their softmax, scored on the same sample as every candidate
  const model = ensembleModel(top.map((t) => t.run.model));
  const s = await scoreModel(model, { targetSample: sample, sourceVal: o.sourceVal, targetEval: o.targetEval });
  const members = top.map((t) => ({ method: t.run.method, seed: t.run.seed }));
  auto.ensemble = { members, snd: s.snd, target_entropy: s.target_entropy, target_im: s.target_im };
  if (s.target_acc !== undefined) auto.ensemble.target_acc = s.target_acc;
  const many = new Set(scored.map((c) => c.seed)).size > 1;
  auto.reason += ` Exported the mean softmax of the top ${k} by ${NAMES[validator]}: ${top.map((t) => label(t.run, many)).join(', ')} (the ensemble's ${NAMES[validator]} ${raw(validator, auto.ensemble).toFixed(4)}).`;
  return { ...best, model, lastModel: model, selected: { ...best.selected, ...s }, auto };
}

const NAMES: Record<Validator, string> = { snd: 'SND', entropy: 'target entropy', im: 'IM' };
const raw = (v: Validator, c: Pick<AutoCandidate, 'snd' | 'target_entropy' | 'target_im'>) =>
  v === 'snd' ? c.snd : v === 'entropy' ? c.target_entropy : c.target_im;
const label = (c: Pick<AutoCandidate, 'method' | 'seed'>, seeds: boolean) => (seeds ? `${c.method} (seed ${c.seed})` : c.method);

/** The reason line: the pick's score, the runner-up, and what the other validators would pick. */
function explain(cs: AutoCandidate[], i: number, v: Validator): string {
  const seeds = new Set(cs.map((c) => c.seed)).size > 1;
  const pick = cs[i]!;
  const dir = v === 'entropy' ? 'lowest' : 'highest';
  let s = `picked ${label(pick, seeds)}: the ${dir} ${NAMES[v]} (${raw(v, pick).toFixed(4)}) of ${cs.length} candidate${cs.length > 1 ? 's' : ''}`;
  const rest = cs.filter((_, k) => k !== i);
  if (rest.length) {
    const next = rest[argmaxBy(rest, v)]!;
    s += `; runner-up ${label(next, seeds)} (${raw(v, next).toFixed(4)})`;
  }
  const others = VALIDATORS.filter((w) => w !== v).map((w) => {
    const k = argmaxBy(cs, w);
    return k === i ? `${NAMES[w]} agrees` : `${NAMES[w]} would pick ${label(cs[k]!, seeds)}`;
  });
  return `${s}; ${others.join(', ')}. No target label was read.`;
}

/** The candidates as a Markdown table (the pick marked), then the reason. */
export function formatAutoTable(r: AutoReport): string[] {
  const acc = r.candidates.some((c) => c.target_acc !== undefined);
  const head = ['method', 'seed', 'SND', 'target entropy', 'IM', ...(acc ? ['target acc % (reported only)'] : []), `picked by ${NAMES[r.validator]}`];
  const lines = [`| ${head.join(' | ')} |`, `|${head.map(() => '---').join('|')}|`];
  for (const c of r.candidates) {
    const picked = c.method === r.pick.method && c.seed === r.pick.seed;
    const cells = [c.method, String(c.seed), c.snd.toFixed(4), c.target_entropy.toFixed(4), c.target_im.toFixed(4)];
    if (acc) cells.push(c.target_acc === undefined ? '—' : (100 * c.target_acc).toFixed(1));
    cells.push(picked ? '**pick**' : '');
    lines.push(`| ${cells.join(' | ')} |`);
  }
  if (r.ensemble) {
    const e = r.ensemble;
    const cells = [`ensemble of ${e.members.length}`, '—', e.snd.toFixed(4), e.target_entropy.toFixed(4), e.target_im.toFixed(4)];
    if (acc) cells.push(e.target_acc === undefined ? '—' : (100 * e.target_acc).toFixed(1));
    cells.push('**exported**');
    lines.push(`| ${cells.join(' | ')} |`);
  }
  return [...lines, '', r.reason];
}
