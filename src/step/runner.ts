/**
 * StepRunner: runs a compiled training step in onnxruntime-node, one `session.run` per step, or K steps per run
 * through the step unrolled K times (`stepsPerRun`, see step/repeat.ts).
 * Parameters, optimizer state and BN statistics live in pre-allocated ort.Tensors that ping-pong
 * between two buffers (outputs are written into the idle buffer, then swapped), so a step makes
 * no JS-array round trip and allocates no new parameter memory.
 */
import { type Model, withInitializers } from '../ir/model.js';
import { createSession, type FeedCheckOptions, ort, runChecked, type SessionOptions, sessionBytes } from '../runtime/session.js';
import { Tensor } from '../tensor.js';
import type { CarriedSlot, CompiledStep } from './compile.js';
import type { CompiledEval } from './eval-graph.js';
import { type RepeatedStep, repeatStep } from './repeat.js';

/** Raised when the loss becomes NaN/Inf; the runner's state is still the last good one. */
export class NonFiniteLossError extends Error {
  constructor(
    public readonly step: number,
    public readonly value: number,
  ) {
    super(
      `Loss became ${value} at step ${step}. The parameters were left at their values before this step. ` +
        'Lower the learning rate, enable gradient clipping (clipNorm), or check the inputs for NaN/Inf.',
    );
  }
}

interface Slot {
  spec: CarriedSlot;
  cur: ort.Tensor;
  next: ort.Tensor;
}

export interface StepResult {
  loss: number;
  metrics: Record<string, number>;
  gradNorm?: number;
}

export interface BatchFeed {
  x: Tensor | ort.Tensor;
  y: Tensor | ort.Tensor;
}

/** Options of {@link StepRunner.create}: the sessions' options, and how many steps one run may take. */
export interface StepRunnerOptions extends SessionOptions {
  /**
   * Also open the step unrolled this many times (K ≥ 2), so {@link StepRunner.trainSteps} takes K steps in one
   * `session.run`, bit-identical to K {@link StepRunner.train} calls. Default 1 (single steps only).
   */
  stepsPerRun?: number;
  /**
   * Keep the eval graph's session and the training sessions apart (default true: never open at once):
   * {@link StepRunner.evaluate} closes the training session(s) before it opens the eval session, and the next
   * training step closes the eval session and opens its session again (from the encoded graph, so no compile).
   * onnxruntime's CPU arena keeps a session's peak until the session is released, so two open sessions hold both
   * peaks at once: a MobileNetV2 fine-tune at batch 32 held its validation's ~420 MB beside the step's ~3.1 GB. The
   * price is one session creation per switch (once per epoch in {@link fit}); the carried state lives in the runner,
   * so nothing else changes. Turn it off where activations are small and sessions slow to open (a head on cached
   * features with K steps per run).
   */
  oneSession?: boolean;
}

/** The K-step session of a runner (see {@link StepRunnerOptions.stepsPerRun}). */
interface MultiStep {
  spec: RepeatedStep;
  /** Open, or undefined while an evaluation holds the only open session (oneSession). */
  session: ort.InferenceSession | undefined;
  bytes: Uint8Array;
  inputNames: Set<string>;
}

/** How the step's and the eval's feed checks are worded (constants: a checked run allocates nothing). */
const TRAIN_FEEDS: FeedCheckOptions = { what: 'the training step' };
const EVAL_FEEDS: FeedCheckOptions = { what: 'the evaluation' };

function asOrt(t: Tensor | ort.Tensor): ort.Tensor {
  if (!(t instanceof Tensor)) return t;
  return new ort.Tensor(t.dtype as 'float32', t.data as Float32Array, t.dims as number[]);
}

function copyTensor(t: Tensor): ort.Tensor {
  return new ort.Tensor(t.dtype as 'float32', t.data.slice() as Float32Array, [...t.dims]);
}

export class StepRunner {
  /** Number of optimizer steps taken so far (1-based numbering inside). */
  stepCount = 0;
  private slots: Slot[] = [];
  /** Per session: whether onnxruntime writes the carried outputs into the pre-allocated `next` buffers (found on its first run). */
  private writesFetches = new WeakMap<ort.InferenceSession, boolean>();
  /** Steps the last {@link trainSteps} took (what {@link rewind} undoes); 0 once anything else ran. */
  private rewindable = 0;
  /** The encoded eval graph, kept so a closed session can be opened again without lowering and encoding again. */
  private evalBytes?: Uint8Array;
  private released = false;
  private constructor(
    readonly step: CompiledStep,
    private readonly stepBytes: Uint8Array,
    private session: ort.InferenceSession | undefined,
    private readonly evalSpec: CompiledEval | undefined,
    private evalSession: ort.InferenceSession | undefined,
    private readonly inputNames: Set<string>,
    private readonly opts: StepRunnerOptions & { oneSession: boolean },
    private readonly multi?: MultiStep,
  ) {
    for (const c of step.carried) {
      if (!inputNames.has(c.input)) continue;
      this.slots.push({ spec: c, cur: copyTensor(c.init), next: copyTensor(c.init) });
    }
  }

  /** Creates sessions for a compiled step (and its eval graph, if given; and the step unrolled `stepsPerRun` times, if ≥ 2). */
  static async create(step: CompiledStep, evalSpec?: CompiledEval, opts: StepRunnerOptions = {}): Promise<StepRunner> {
    const { stepsPerRun = 1, oneSession = true, ...sessionOpts } = opts;
    if (!(Number.isInteger(stepsPerRun) && stepsPerRun >= 1))
      throw new Error(`StepRunner.create: stepsPerRun must be a whole number ≥ 1 (got ${stepsPerRun}); use 1 for one step per run.`);
    const bytes = await sessionBytes(step.model, sessionOpts);
    const session = await createSession(bytes, sessionOpts);
    const evalSession = evalSpec && !oneSession ? await createSession(evalSpec.model, sessionOpts) : undefined;
    let multi: MultiStep | undefined;
    if (stepsPerRun > 1) {
      const spec = repeatStep(step, stepsPerRun);
      const multiBytes = await sessionBytes(spec.model, sessionOpts);
      const s = await createSession(multiBytes, sessionOpts);
      multi = { spec, session: s, bytes: multiBytes, inputNames: new Set(s.inputNames) };
    }
    return new StepRunner(step, bytes, session, evalSpec, evalSession, new Set(session.inputNames), { ...sessionOpts, oneSession }, multi);
  }

  /** The single-step training session, opened again (after closing the eval session, with oneSession) if an evaluation closed it. */
  private async trainSession(): Promise<ort.InferenceSession> {
    if (this.session) return this.session;
    await this.closeEval();
    this.session = await createSession(this.stepBytes, this.opts);
    return this.session;
  }

  /** The K-step session, opened again the same way. */
  private async multiSession(m: MultiStep): Promise<ort.InferenceSession> {
    if (m.session) return m.session;
    await this.closeEval();
    m.session = await createSession(m.bytes, this.opts);
    return m.session;
  }

  private async closeEval(): Promise<void> {
    this.checkOpen();
    if (!this.opts.oneSession || !this.evalSession) return;
    const ev = this.evalSession;
    this.evalSession = undefined;
    await ev.release();
  }

  /** The eval session, opened on first use (after closing the training sessions, with oneSession). */
  private async evalSessionOpen(spec: CompiledEval): Promise<ort.InferenceSession> {
    if (this.evalSession) return this.evalSession;
    this.checkOpen();
    if (this.opts.oneSession) {
      const open = [this.session, this.multi?.session];
      this.session = undefined;
      if (this.multi) this.multi.session = undefined;
      for (const s of open) await s?.release();
    }
    this.evalBytes ??= await sessionBytes(spec.model, this.opts);
    this.evalSession = await createSession(this.evalBytes, this.opts);
    return this.evalSession;
  }

  private checkOpen(): void {
    if (this.released) throw new Error('This StepRunner was released; create a new one with StepRunner.create (its state() can be load()ed into it).');
  }

  /** Which of the runner's onnxruntime sessions are open now (with oneSession, never training and eval at once). */
  get openSessions(): { train: boolean; eval: boolean } {
    return { train: this.session !== undefined || this.multi?.session !== undefined, eval: this.evalSession !== undefined };
  }

  /** Steps one {@link trainSteps} call takes (1: this runner runs single steps only). */
  get stepsPerRun(): number {
    return this.multi?.spec.steps ?? 1;
  }

  /**
   * One training step. `lr` holds one learning rate per parameter group.
   * @throws NonFiniteLossError (state untouched) when the loss is NaN/Inf.
   */
  async train(batch: BatchFeed, lr: number[], seed = 0): Promise<StepResult> {
    const s = this.step;
    const stepNo = this.stepCount + 1;
    const feeds: Record<string, ort.Tensor> = { [s.dataInput]: asOrt(batch.x), [s.targetInput]: asOrt(batch.y) };
    s.lrInputs.forEach((name, i) => {
      if (this.inputNames.has(name)) feeds[name] = scalar(lr[i] ?? lr[0]!);
    });
    if (s.dropoutSeedInput && this.inputNames.has(s.dropoutSeedInput)) feeds[s.dropoutSeedInput] = scalar(dropoutSeed(seed, stepNo));
    for (const [k, v] of Object.entries(s.scalarValues(stepNo))) if (this.inputNames.has(k)) feeds[k] = scalar(v);
    const fetches: Record<string, ort.Tensor | null> = { [s.lossOutput]: null };
    for (const m of Object.values(s.metricOutputs)) fetches[m] = null;
    if (s.gradNormOutput) fetches[s.gradNormOutput] = null;
    this.rewindable = 0;
    const session = await this.trainSession();
    const out = await this.runState(session, feeds, fetches);
    const loss = (out[s.lossOutput]!.data as Float32Array)[0]!;
    if (!Number.isFinite(loss)) throw new NonFiniteLossError(stepNo, loss);
    this.takeState(session, out);
    this.stepCount = stepNo;
    const metrics: Record<string, number> = {};
    for (const [k, v] of Object.entries(s.metricOutputs)) metrics[k] = (out[v]!.data as Float32Array)[0]!;
    const r: StepResult = { loss, metrics };
    if (s.gradNormOutput) r.gradNorm = (out[s.gradNormOutput]!.data as Float32Array)[0]!;
    return r;
  }

  /**
   * K = {@link stepsPerRun} training steps in one `session.run`, bit-identical to K {@link train} calls: `batch.x`
   * holds the K batches stacked ([K, rows, ...sample]), `batch.y` their targets ([K, rows]), `lrs[j]` step j's
   * learning rate per parameter group.
   * @returns each step's result; or undefined when a loss is NaN/Inf, with the state left as before the call (run
   * the K steps with {@link train} to find the step and its error).
   */
  async trainSteps(batch: BatchFeed, lrs: number[][], seed = 0): Promise<StepResult[] | undefined> {
    const m = this.multi;
    if (!m) throw new Error('StepRunner.trainSteps: this runner takes one step per run; create it with stepsPerRun ≥ 2.');
    const spec = m.spec;
    const k = spec.steps;
    if (lrs.length !== k) throw new Error(`StepRunner.trainSteps: ${lrs.length} learning-rate rows for ${k} steps; pass one per step.`);
    const s = this.step;
    const first = this.stepCount + 1;
    const feeds: Record<string, ort.Tensor> = { [s.dataInput]: asOrt(batch.x), [s.targetInput]: asOrt(batch.y) };
    const stacked = (name: string, value: (j: number) => number) => {
      if (m.inputNames.has(name))
        feeds[name] = new ort.Tensor(
          'float32',
          Float32Array.from({ length: k }, (_, j) => value(j)),
          [k],
        );
    };
    for (const [i, name] of s.lrInputs.entries()) stacked(name, (j) => lrs[j]![i] ?? lrs[j]![0]!);
    if (s.dropoutSeedInput) stacked(s.dropoutSeedInput, (j) => dropoutSeed(seed, first + j));
    if (s.scalarInputs.length) {
      const values = Array.from({ length: k }, (_, j) => s.scalarValues(first + j));
      for (const name of s.scalarInputs) stacked(name, (j) => values[j]![name]!);
    }
    const fetches: Record<string, ort.Tensor | null> = { [spec.lossOutput]: null };
    for (const v of Object.values(spec.metricOutputs)) fetches[v] = null;
    if (spec.gradNormOutput) fetches[spec.gradNormOutput] = null;
    this.rewindable = 0;
    const session = await this.multiSession(m);
    const out = await this.runState(session, feeds, fetches);
    const losses = out[spec.lossOutput]!.data as Float32Array;
    if (!losses.every(Number.isFinite)) return undefined;
    this.takeState(session, out);
    this.stepCount += k;
    this.rewindable = k;
    const results: StepResult[] = [];
    for (let j = 0; j < k; j++) {
      const metrics: Record<string, number> = {};
      for (const [key, v] of Object.entries(spec.metricOutputs)) metrics[key] = (out[v]!.data as Float32Array)[j]!;
      const r: StepResult = { loss: losses[j]!, metrics };
      if (spec.gradNormOutput) r.gradNorm = (out[spec.gradNormOutput]!.data as Float32Array)[j]!;
      results.push(r);
    }
    return results;
  }

  /**
   * Undoes the last {@link trainSteps} call, which must be the last thing this runner ran: the state and step count
   * go back to before it (the state before a run is still in the idle buffers). E.g. a loop that must stop after
   * step j of the K replays steps 1..j with {@link train}.
   */
  rewind(): void {
    if (!this.rewindable) throw new Error('StepRunner.rewind: only the last trainSteps call can be undone, and nothing has run since.');
    for (const slot of this.slots) swap(slot);
    this.stepCount -= this.rewindable;
    this.rewindable = 0;
  }

  /** One run of `session` with the carried state fed from `cur` and written into `next` (not yet swapped in). */
  private async runState(
    session: ort.InferenceSession,
    feeds: Record<string, ort.Tensor>,
    fetches: Record<string, ort.Tensor | null>,
  ): Promise<ort.InferenceSession.ReturnType> {
    for (const slot of this.slots) {
      feeds[slot.spec.input] = slot.cur;
      fetches[slot.spec.output] = slot.next;
    }
    const known = this.writesFetches.get(session);
    if (known === undefined) for (const slot of this.slots) markUnwritten(slot.next);
    const out = await runChecked(session, feeds, fetches, TRAIN_FEEDS);
    if (known === undefined)
      this.writesFetches.set(
        session,
        this.slots.every((slot) => holdsResult(slot.next, out[slot.spec.output]!)),
      );
    return out;
  }

  /** Makes the state a run wrote into `next` current. */
  private takeState(session: ort.InferenceSession, out: ort.InferenceSession.ReturnType): void {
    const writes = this.writesFetches.get(session) === true;
    for (const slot of this.slots) {
      // onnxruntime-node writes into the pre-allocated buffer, then returns a copy of it (its binding copies every
      // output); copy back only where a binding left the buffer unwritten
      const got = out[slot.spec.output]!;
      if (!writes && got.data !== slot.next.data) (slot.next.data as Float32Array).set(got.data as Float32Array);
      swap(slot);
    }
  }

  /** Ends onnxruntime profiling of the training sessions (when created with `profile`) and flushes their trace files. */
  endProfiling(): void {
    for (const session of [this.session, this.multi?.session]) (session as unknown as { endProfiling(): void } | undefined)?.endProfiling();
  }

  /** Evaluates one batch in inference mode with the current state. */
  async evaluate(batch: BatchFeed): Promise<EvalResult> {
    if (!this.evalSpec) throw new Error('This runner was created without an eval graph; pass one to StepRunner.create.');
    const state: Record<string, ort.Tensor> = {};
    for (const slot of this.slots) if (this.evalSpec.stateInputs.includes(slot.spec.input)) state[slot.spec.input] = slot.cur;
    return runEval(await this.evalSessionOpen(this.evalSpec), this.evalSpec, batch, state);
  }

  /** Current values of all carried state (copies), keyed by input name. */
  state(kinds: CarriedSlot['kind'][] = ['param', 'optim', 'bn']): Map<string, Tensor> {
    const m = new Map<string, Tensor>();
    for (const s of this.slots)
      if (kinds.includes(s.spec.kind)) m.set(s.spec.input, new Tensor(s.spec.init.dtype, [...s.spec.init.dims], (s.cur.data as Float32Array).slice()));
    return m;
  }

  /** Restores carried state (e.g. from a checkpoint). Unknown names are an error; missing ones keep their value. */
  load(values: Map<string, Tensor>, stepCount?: number): void {
    this.rewindable = 0;
    const bySlot = new Map(this.slots.map((s) => [s.spec.input, s]));
    for (const [k, v] of values) {
      const s = bySlot.get(k);
      if (!s) throw new Error(`Checkpoint holds "${k}", which this training step does not carry. The checkpoint is from a different model or configuration.`);
      if (v.size !== s.cur.size)
        throw new Error(`Checkpoint value "${k}" has ${v.size} elements, the model expects ${s.cur.size}. The checkpoint is from a different model.`);
      (s.cur.data as Float32Array).set(v.data as Float32Array);
    }
    if (stepCount !== undefined) this.stepCount = stepCount;
  }

  /** The forward model with the current trained parameters and BN statistics folded back into initializers. */
  exportForward(forward: Model): Model {
    return withInitializers(forward, this.state(['param', 'bn']));
  }

  async release(): Promise<void> {
    const open = [this.session, this.evalSession, this.multi?.session];
    this.released = true;
    this.session = this.evalSession = undefined;
    if (this.multi) this.multi.session = undefined;
    for (const s of open) await s?.release();
  }
}

/** The dropout seed of a 1-based step (a pure function of the run's seed and the step, so resumed runs draw the same masks). */
function dropoutSeed(seed: number, step: number): number {
  return ((seed * 1000003 + step) % 65521) / 7.31;
}

function swap(slot: Slot): void {
  const t = slot.cur;
  slot.cur = slot.next;
  slot.next = t;
}

/** What evaluating one batch gives. */
export interface EvalResult {
  loss: number;
  metrics: Record<string, number>;
  output: ort.Tensor;
}

/** Anything that evaluates batches in inference mode (a {@link StepRunner} during training, an {@link EvalRunner} otherwise). */
export interface BatchEvaluator {
  evaluate(batch: BatchFeed): Promise<EvalResult>;
}

async function runEval(session: ort.InferenceSession, ev: CompiledEval, batch: BatchFeed, state: Record<string, ort.Tensor>): Promise<EvalResult> {
  const out = await runChecked(session, { [ev.dataInput]: asOrt(batch.x), [ev.targetInput]: asOrt(batch.y), ...state }, undefined, EVAL_FEEDS);
  const metrics: Record<string, number> = {};
  for (const [k, v] of Object.entries(ev.metricOutputs)) metrics[k] = (out[v]!.data as Float32Array)[0]!;
  return { loss: (out[ev.lossOutput]!.data as Float32Array)[0]!, metrics, output: out[ev.output]! };
}

/** Evaluation only: runs an eval graph compiled without a training step (`compileEvalStep(model)`), so no optimizer or step graph is built. */
export class EvalRunner implements BatchEvaluator {
  private constructor(
    private readonly ev: CompiledEval,
    private readonly session: ort.InferenceSession,
  ) {}
  static async create(ev: CompiledEval, opts: SessionOptions = {}): Promise<EvalRunner> {
    if (ev.stateInputs.length)
      throw new Error(
        `EvalRunner: the eval graph reads training state (${ev.stateInputs.slice(0, 3).join(', ')}…); use StepRunner.create for a training step's eval graph.`,
      );
    return new EvalRunner(ev, await createSession(ev.model, opts));
  }
  evaluate(batch: BatchFeed): Promise<EvalResult> {
    return runEval(this.session, this.ev, batch, {});
  }
  async release(): Promise<void> {
    await this.session.release();
  }
}

/** A NaN bit pattern no kernel produces, written to the first element of a fetch buffer before the first step. */
const UNWRITTEN = 0x7f8a5a5a;

function markUnwritten(t: ort.Tensor): void {
  const d = t.data as Float32Array;
  if (d.length) new Uint32Array(d.buffer, d.byteOffset, 1)[0] = UNWRITTEN;
}

/** Whether the pre-allocated buffer `mine` was overwritten with the result `got` (checked in full, once per runner). */
function holdsResult(mine: ort.Tensor, got: ort.Tensor): boolean {
  if (got.data === mine.data) return true;
  const a = mine.data as Float32Array;
  const b = got.data as Float32Array;
  if (a.length !== b.length) return false;
  if (a.length && new Uint32Array(a.buffer, a.byteOffset, 1)[0] === UNWRITTEN) return false;
  const ua = new Uint32Array(a.buffer, a.byteOffset, a.length);
  const ub = new Uint32Array(b.buffer, b.byteOffset, b.length);
  for (let i = 0; i < ua.length; i++) if (ua[i] !== ub[i]) return false;
  return true;
}

function scalar(v: number): ort.Tensor {
  return new ort.Tensor('float32', Float32Array.of(v), []);
}
