/**
 * Host-side learning-rate schedules. A schedule is a pure function of the step and the total number of
 * steps that returns a multiplier on the base LR; the runner feeds `lr · lrScale(group) · schedule(step, total)`
 * into the step graph's LR inputs, so changing the LR never rebuilds the graph.
 *
 * Step convention (PyTorch's): `step` is the number of updates already made, i.e. 0 for the first update
 * and `total − 1` for the last. A runner that numbers updates from 1 passes `t − 1`.
 */

/** LR multiplier for the update that follows `step` completed updates (0-based), out of `total`. */
export type Schedule = (step: number, total: number) => number;

/** JSON-able description of a schedule, for config files; see {@link makeSchedule}. */
export type ScheduleSpec =
  | { kind: 'constant' }
  | { kind: 'step'; stepSize: number; gamma?: number }
  | { kind: 'cosine'; minFactor?: number }
  | { kind: 'onecycle'; pctStart?: number; divFactor?: number; finalDivFactor?: number; anneal?: 'cos' | 'linear'; threePhase?: boolean }
  | { kind: 'inv'; gamma?: number; power?: number }
  | { kind: 'warmup'; steps?: number; fraction?: number; startFactor?: number; then?: ScheduleSpec | ScheduleKind };

/** The `kind` of every {@link ScheduleSpec}. */
export type ScheduleKind = ScheduleSpec['kind'];

function check(where: string, key: string, v: unknown, ok: (x: number) => boolean, want: string): number {
  if (typeof v !== 'number' || !Number.isFinite(v) || !ok(v))
    throw new Error(`${where}: ${key} must be ${want}, got ${JSON.stringify(v)}. Fix the schedule options.`);
  return v;
}

/** Validates (step, total) and clamps step to [0, total]. */
function clampStep(where: string, step: number, total: number): number {
  if (typeof total !== 'number' || !(total > 0) || !Number.isFinite(total))
    throw new Error(`${where}: total must be a finite number of steps > 0, got ${total}. Pass the total number of updates of the run.`);
  if (typeof step !== 'number' || !Number.isFinite(step) || step < 0)
    throw new Error(`${where}: step must be a finite number ≥ 0 (0 for the first update), got ${step}.`);
  return Math.min(step, total);
}

/** Constant multiplier 1. */
export function constantSchedule(): Schedule {
  return (step, total) => {
    clampStep('constantSchedule', step, total);
    return 1;
  };
}

/** `torch.optim.lr_scheduler.StepLR`: multiplier `gamma^⌊step / stepSize⌋` (gamma default 0.1). */
export function stepSchedule(opts: { stepSize: number; gamma?: number }): Schedule {
  const where = 'stepSchedule';
  const stepSize = check(where, 'stepSize', opts.stepSize, (x) => x > 0, 'a number of steps > 0');
  const gamma = check(where, 'gamma', opts.gamma ?? 0.1, (x) => x >= 0, 'a number ≥ 0');
  return (step, total) => gamma ** Math.floor(clampStep(where, step, total) / stepSize);
}

/**
 * Cosine annealing over the whole run (`CosineAnnealingLR` with `T_max = total`, `eta_min = minFactor · lr`):
 * `minFactor + (1 − minFactor)·(1 + cos(π·step/total))/2`; 1 at step 0, `minFactor` at step `total`.
 */
export function cosineSchedule(opts: { minFactor?: number } = {}): Schedule {
  const where = 'cosineSchedule';
  const min = check(where, 'minFactor', opts.minFactor ?? 0, (x) => x >= 0 && x <= 1, 'a fraction of the base LR in [0, 1]');
  return (step, total) => min + ((1 - min) * (1 + Math.cos((Math.PI * clampStep(where, step, total)) / total))) / 2;
}

/** Options of {@link oneCycleSchedule}; defaults are PyTorch's `OneCycleLR`. */
export interface OneCycleOptions {
  /** Fraction of the run spent increasing the LR. Default 0.3. */
  pctStart?: number;
  /** Initial LR = max LR / divFactor. Default 25. */
  divFactor?: number;
  /** Final LR = initial LR / finalDivFactor. Default 1e4. */
  finalDivFactor?: number;
  /** Annealing curve. Default 'cos'. */
  anneal?: 'cos' | 'linear';
  /** Fast.ai-style three phases (up, back down to the initial LR, then down to the final LR). Default false. */
  threePhase?: boolean;
}

/**
 * `torch.optim.lr_scheduler.OneCycleLR` (total_steps = total, max_lr = the base LR) as a multiplier:
 * it rises from `1/divFactor` to 1 at step `pctStart·total − 1` (the update numbered `pctStart·total` from 1),
 * then anneals to `1/(divFactor·finalDivFactor)` at step `total − 1`. Momentum cycling is not provided.
 */
export function oneCycleSchedule(opts: OneCycleOptions = {}): Schedule {
  const where = 'oneCycleSchedule';
  const pct = check(where, 'pctStart', opts.pctStart ?? 0.3, (x) => x > 0 && x < 1, 'a fraction in (0, 1)');
  const div = check(where, 'divFactor', opts.divFactor ?? 25, (x) => x > 0, 'a number > 0');
  const finalDiv = check(where, 'finalDivFactor', opts.finalDivFactor ?? 1e4, (x) => x > 0, 'a number > 0');
  const anneal = opts.anneal ?? 'cos';
  if (anneal !== 'cos' && anneal !== 'linear') throw new Error(`${where}: anneal must be 'cos' or 'linear', got ${JSON.stringify(anneal)}.`);
  const f =
    anneal === 'cos'
      ? (a: number, b: number, p: number) => b + ((a - b) / 2) * (Math.cos(Math.PI * p) + 1)
      : (a: number, b: number, p: number) => (b - a) * p + a;
  const initial = 1 / div;
  const final = initial / finalDiv;
  return (step, total) => {
    step = Math.min(clampStep(where, step, total), total - 1);
    const phases: [number, number, number][] = opts.threePhase
      ? [
          [pct * total - 1, initial, 1],
          [2 * pct * total - 2, 1, initial],
          [total - 1, initial, final],
        ]
      : [
          [pct * total - 1, initial, 1],
          [total - 1, 1, final],
        ];
    let start = 0;
    for (let i = 0; i < phases.length; i++) {
      const [end, a, b] = phases[i]!;
      if (step <= end || i === phases.length - 1) return f(a, b, end > start ? (step - start) / (end - start) : 1);
      start = end;
    }
    return final;
  };
}

/**
 * The annealing of the domain-adaptation literature (DANN, CDAN): `(1 + gamma·p)^(−power)` with
 * `p = step / total` (defaults gamma 10, power 0.75).
 */
export function invSchedule(opts: { gamma?: number; power?: number } = {}): Schedule {
  const where = 'invSchedule';
  const gamma = check(where, 'gamma', opts.gamma ?? 10, (x) => x >= 0, 'a number ≥ 0');
  const power = check(where, 'power', opts.power ?? 0.75, (x) => x >= 0, 'a number ≥ 0');
  return (step, total) => (1 + (gamma * clampStep(where, step, total)) / total) ** -power;
}

/** Options of {@link withWarmup}: give `steps` or `fraction` (of the total). */
export interface WarmupOptions {
  /** Warmup length in updates. */
  steps?: number;
  /** Warmup length as a fraction of the total, in [0, 1). */
  fraction?: number;
  /** Multiplier at step 0, rising linearly to 1. Default 0. */
  startFactor?: number;
}

/**
 * Linear warmup followed by `inner`: for `step < W` the multiplier is
 * `(startFactor + (1 − startFactor)·step/W) · inner(0, total − W)`; afterwards `inner(step − W, total − W)`,
 * so the inner schedule runs over the remaining steps (as in HuggingFace's `*_with_warmup` schedules).
 */
export function withWarmup(inner: Schedule, opts: WarmupOptions): Schedule {
  const where = 'withWarmup';
  if ((opts.steps === undefined) === (opts.fraction === undefined))
    throw new Error(`${where}: give exactly one of steps or fraction, got ${JSON.stringify(opts)}. E.g. { steps: 500 } or { fraction: 0.1 }.`);
  if (opts.steps !== undefined) check(where, 'steps', opts.steps, (x) => x >= 0, 'a number of steps ≥ 0');
  if (opts.fraction !== undefined) check(where, 'fraction', opts.fraction, (x) => x >= 0 && x < 1, 'a fraction in [0, 1)');
  const startFactor = check(where, 'startFactor', opts.startFactor ?? 0, (x) => x >= 0 && x <= 1, 'a number in [0, 1]');
  return (step, total) => {
    step = clampStep(where, step, total);
    const w = opts.steps ?? opts.fraction! * total;
    if (w >= total) throw new Error(`${where}: the warmup (${w} steps) must be shorter than the run (${total} steps). Shorten the warmup.`);
    if (step < w) return (startFactor + ((1 - startFactor) * step) / w) * inner(0, total - w);
    return inner(step - w, total - w);
  };
}

const SPEC_KEYS: Record<ScheduleKind, string[]> = {
  constant: [],
  step: ['stepSize', 'gamma'],
  cosine: ['minFactor'],
  onecycle: ['pctStart', 'divFactor', 'finalDivFactor', 'anneal', 'threePhase'],
  inv: ['gamma', 'power'],
  warmup: ['steps', 'fraction', 'startFactor', 'then'],
};

/**
 * Builds a schedule from a JSON-able spec (or a bare kind), e.g.
 * `{ kind: 'warmup', fraction: 0.05, then: { kind: 'cosine', minFactor: 0.01 } }` or `'onecycle'`.
 * Unknown kinds and misspelt keys are errors.
 */
export function makeSchedule(spec: ScheduleSpec | ScheduleKind): Schedule {
  const s = (typeof spec === 'string' ? { kind: spec } : spec) as ScheduleSpec;
  const keys = SPEC_KEYS[s?.kind as ScheduleKind];
  if (!keys)
    throw new Error(
      `makeSchedule: unknown schedule kind ${JSON.stringify(s?.kind)}. Use one of ${Object.keys(SPEC_KEYS)
        .map((k) => `'${k}'`)
        .join(', ')}.`,
    );
  const extra = Object.keys(s).filter((k) => k !== 'kind' && !keys.includes(k));
  if (extra.length)
    throw new Error(
      `makeSchedule: '${s.kind}' schedule does not take ${extra.map((k) => `'${k}'`).join(', ')}. Its options are: ${keys.map((k) => `'${k}'`).join(', ') || 'none'}.`,
    );
  switch (s.kind) {
    case 'constant':
      return constantSchedule();
    case 'step':
      return stepSchedule(s);
    case 'cosine':
      return cosineSchedule(s);
    case 'onecycle':
      return oneCycleSchedule(s);
    case 'inv':
      return invSchedule(s);
    case 'warmup':
      return withWarmup(makeSchedule(s.then ?? 'constant'), s);
  }
}
