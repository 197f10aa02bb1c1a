/**
 * StepRunner: runs a compiled training step in onnxruntime-node, one `session.run` per step.
 * Parameters, optimizer state and BN statistics live in pre-allocated ort.Tensors that ping-pong
 * between two buffers (outputs are written into the idle buffer, then swapped), so a step makes
 * no JS-array round trip and allocates no new parameter memory.
 */
import { type Model, withInitializers } from '../ir/model.js';
import { encodeModel } from '../onnx/io.js';
import { createSession, type FeedCheckOptions, lowered, ort, runChecked, type SessionOptions } from '../runtime/session.js';
import { Tensor } from '../tensor.js';
import type { CarriedSlot, CompiledStep } from './compile.js';
import type { CompiledEval } from './eval-graph.js';

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

/** Options of {@link StepRunner.create}: onnxruntime's session options, and whether its two sessions may be open at once. */
export interface StepRunnerOptions extends SessionOptions {
  /**
   * Keep at most one of the step's and the eval graph's sessions open (default true): {@link StepRunner.evaluate}
   * closes the training session before it opens the eval session, and the next {@link StepRunner.train} closes the
   * eval session and opens the training session again (from the encoded graph, so no compile). onnxruntime's CPU
   * arena keeps a session's peak until the session is released, so two open sessions hold both peaks at once: a
   * MobileNetV2 fine-tune at batch 32 held its validation's ~420 MB beside the step's ~3.1 GB. The price is one session
   * creation per switch (once per epoch in {@link fit}); the carried state lives in the runner, so nothing else changes.
   */
  oneSession?: boolean;
}

export class StepRunner {
  /** Number of optimizer steps taken so far (1-based numbering inside). */
  stepCount = 0;
  private slots: Slot[] = [];
  /** Whether onnxruntime writes the carried outputs into the pre-allocated `next` buffers (found on the first step). */
  private writesFetches?: boolean;
  /** The encoded graphs, kept so a closed session can be opened again without lowering and encoding again. */
  private evalBytes?: Uint8Array;
  private released = false;
  private constructor(
    readonly step: CompiledStep,
    private readonly stepBytes: Uint8Array,
    private session: ort.InferenceSession | undefined,
    private readonly evalSpec: CompiledEval | undefined,
    private evalSession: ort.InferenceSession | undefined,
    private readonly inputNames: Set<string>,
    private readonly opts: StepRunnerOptions,
  ) {
    for (const c of step.carried) {
      if (!inputNames.has(c.input)) continue;
      this.slots.push({ spec: c, cur: copyTensor(c.init), next: copyTensor(c.init) });
    }
  }

  /** Creates the training session for a compiled step; the eval graph's (if given) opens when first evaluated. */
  static async create(step: CompiledStep, evalSpec?: CompiledEval, opts: StepRunnerOptions = {}): Promise<StepRunner> {
    const bytes = encodeModel(lowered(step.model));
    const session = await createSession(bytes, opts);
    const oneSession = opts.oneSession ?? true;
    const evalSession = evalSpec && !oneSession ? await createSession(evalSpec.model, opts) : undefined;
    return new StepRunner(step, bytes, session, evalSpec, evalSession, new Set(session.inputNames), { ...opts, oneSession });
  }

  /** The training session, opened again (after closing the eval session, with oneSession) if an evaluation closed it. */
  private async trainSession(): Promise<ort.InferenceSession> {
    if (this.session) return this.session;
    this.checkOpen();
    if (this.opts.oneSession && this.evalSession) {
      const ev = this.evalSession;
      this.evalSession = undefined;
      await ev.release();
    }
    this.session = await createSession(this.stepBytes, this.opts);
    return this.session;
  }

  private checkOpen(): void {
    if (this.released) throw new Error('This StepRunner was released; create a new one with StepRunner.create (its state() can be load()ed into it).');
  }

  /** The eval session, opened on first use (after closing the training session, with oneSession). */
  private async evalSessionOpen(spec: CompiledEval): Promise<ort.InferenceSession> {
    if (this.evalSession) return this.evalSession;
    this.checkOpen();
    if (this.opts.oneSession && this.session) {
      const s = this.session;
      this.session = undefined;
      await s.release();
    }
    this.evalBytes ??= encodeModel(lowered(spec.model));
    this.evalSession = await createSession(this.evalBytes, this.opts);
    return this.evalSession;
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
    if (s.dropoutSeedInput && this.inputNames.has(s.dropoutSeedInput)) feeds[s.dropoutSeedInput] = scalar(((seed * 1000003 + stepNo) % 65521) / 7.31);
    for (const [k, v] of Object.entries(s.scalarValues(stepNo))) if (this.inputNames.has(k)) feeds[k] = scalar(v);
    const fetches: Record<string, ort.Tensor | null> = { [s.lossOutput]: null };
    for (const m of Object.values(s.metricOutputs)) fetches[m] = null;
    if (s.gradNormOutput) fetches[s.gradNormOutput] = null;
    for (const slot of this.slots) {
      feeds[slot.spec.input] = slot.cur;
      fetches[slot.spec.output] = slot.next;
    }
    if (this.writesFetches === undefined) for (const slot of this.slots) markUnwritten(slot.next);
    const out = await runChecked(await this.trainSession(), feeds, fetches, TRAIN_FEEDS);
    const loss = (out[s.lossOutput]!.data as Float32Array)[0]!;
    if (!Number.isFinite(loss)) throw new NonFiniteLossError(stepNo, loss);
    this.writesFetches ??= this.slots.every((slot) => holdsResult(slot.next, out[slot.spec.output]!));
    for (const slot of this.slots) {
      // onnxruntime-node writes into the pre-allocated buffer, then returns a copy of it (its binding copies every
      // output); copy back only where a binding left the buffer unwritten
      const got = out[slot.spec.output]!;
      if (!this.writesFetches && got.data !== slot.next.data) (slot.next.data as Float32Array).set(got.data as Float32Array);
      const t = slot.cur;
      slot.cur = slot.next;
      slot.next = t;
    }
    this.stepCount = stepNo;
    const metrics: Record<string, number> = {};
    for (const [k, v] of Object.entries(s.metricOutputs)) metrics[k] = (out[v]!.data as Float32Array)[0]!;
    const r: StepResult = { loss, metrics };
    if (s.gradNormOutput) r.gradNorm = (out[s.gradNormOutput]!.data as Float32Array)[0]!;
    return r;
  }

  /** Which of the runner's onnxruntime sessions are open now (with oneSession, never both). */
  get openSessions(): { train: boolean; eval: boolean } {
    return { train: this.session !== undefined, eval: this.evalSession !== undefined };
  }

  /** Ends onnxruntime profiling of the training session (when created with `profile`) and flushes its trace file. */
  endProfiling(): void {
    (this.session as unknown as { endProfiling(): void } | undefined)?.endProfiling();
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
    const [s, ev] = [this.session, this.evalSession];
    this.released = true;
    this.session = this.evalSession = undefined;
    await s?.release();
    await ev?.release();
  }
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
