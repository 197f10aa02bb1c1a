/** onnxruntime-node sessions for graft models, and conversion between host Tensors and ort.Tensors. */
import * as ort from 'onnxruntime-node';
import { Emitter } from '../ir/emit.js';
import type { Model } from '../ir/model.js';
import { GRAFT_DOMAIN, lowerGraftOps } from '../ir/op-registry.js';
import { encodeModel } from '../onnx/io.js';
import { type DType, Tensor, type TypedArray } from '../tensor.js';
import { type Device, defaultDevice, deviceError, executionProviders } from './device.js';
import { runChecked } from './feeds.js';
import { nchwcBlock } from './nchwc.js';
import { nchwcDense } from './nchwc-dense.js';
import { nchwcDepthwise } from './nchwc-depthwise.js';
import { isOrtOutOfMemory, withOomAdvice } from './ort-errors.js';
import { defaultSpinning, defaultThreads } from './threads.js';

export { type Device, defaultDevice, setDefaultDevice } from './device.js';
export { type FeedCheckOptions, FeedError, runChecked } from './feeds.js';
export { defaultSpinning, defaultThreads, setDefaultThreads, spinningFor } from './threads.js';
export { ort };

/**
 * onnxruntime's log severity for graft's sessions: 4 (fatal only), so its own ANSI-coloured log lines do not
 * reach the user ahead of graft's message for the same failure (the error itself is still thrown); with
 * GRAFT_DEBUG=1, 2 (warnings and errors) as onnxruntime's default.
 */
export const ORT_LOG_SEVERITY: 2 | 4 = process.env.GRAFT_DEBUG === '1' ? 2 : 4;
/** The same, as onnxruntime's process-wide `env.logLevel` (read when its environment is first created). */
export const ORT_LOG_LEVEL = ORT_LOG_SEVERITY === 4 ? 'fatal' : 'warning';
ort.env.logLevel = ORT_LOG_LEVEL;

export interface SessionOptions {
  /** Intra-op threads; default: {@link defaultThreads} (the process default, else env GRAFT_THREADS, else all cores). */
  threads?: number;
  /** Graph optimization level (default 'all'). */
  optimization?: 'disabled' | 'basic' | 'extended' | 'all';
  /** Write an onnxruntime profile (Chrome trace JSON) with this file prefix; default: env GRAFT_ORT_PROFILE. */
  profile?: string;
  /** Let idle intra-op threads spin-wait; default: {@link defaultSpinning} (env GRAFT_ORT_SPIN=0/1, else only while the machine has a free core per thread). */
  spinning?: boolean;
  /** Where the session runs; default: {@link defaultDevice} (the process default, else env GRAFT_DEVICE, else cpu). */
  device?: Device;
  /**
   * onnxruntime's CPU memory arena; default: on unless env GRAFT_ORT_ARENA=0. Off, each intermediate tensor is malloc'd
   * and freed as the run goes, so a session holds nothing between runs and two sessions never hold their peaks at
   * once: a whole MobileNetV2 fine-tune at batch 32 peaked at 2.87 GB instead of 3.9 GB (PyTorch: 3.2–3.3 GB; with
   * StepRunner's one open session at a time the default is now ~3.35 GB), but a step costs ~1.9x the CPU time (fresh pages each run; docs/benchmarks.md), so it is the memory-over-speed choice.
   */
  arena?: boolean;
}

/**
 * onnxruntime's session options for graft's {@link SessionOptions}: the one place they are built (also for the
 * feature-extraction worker, which creates its session in a worker thread from this plain object), and the one
 * place the environment defaults GRAFT_ORT_PROFILE and GRAFT_ORT_ARENA are read (threads and spinning come from ./threads.ts).
 */
export function ortSessionOptions(opts: SessionOptions = {}): ort.InferenceSession.SessionOptions {
  const profile = opts.profile ?? process.env.GRAFT_ORT_PROFILE;
  const threads = opts.threads ?? defaultThreads();
  const spinning = opts.spinning ?? defaultSpinning(threads);
  const arena = opts.arena ?? process.env.GRAFT_ORT_ARENA !== '0';
  return {
    executionProviders: executionProviders(opts.device ?? defaultDevice()),
    intraOpNumThreads: threads,
    interOpNumThreads: 1,
    executionMode: 'sequential',
    graphOptimizationLevel: opts.optimization ?? 'all',
    logSeverityLevel: ORT_LOG_SEVERITY,
    // No memory pattern: with it, the first run's tensors stay in the CPU arena as free chunks while every later run
    // allocates the planned pattern as one more contiguous block beside them, so an arena holds about twice a run's
    // peak (a MobileNetV2 training step at batch 8: 1.82 GB peak RSS with it, 1.02 GB without; bench/memory.ts).
    // The arena alone already reuses each run's chunks.
    enableMemPattern: false,
    ...(arena ? {} : { enableCpuMemArena: false }),
    ...(profile ? { enableProfiling: true, profileFilePrefix: profile } : {}),
    // the graph onnxruntime runs after its optimisations, for bench/step-liveness.py beside a GRAFT_ORT_PROFILE trace
    ...(process.env.GRAFT_ORT_SAVE_OPTIMIZED ? { optimizedModelFilePath: process.env.GRAFT_ORT_SAVE_OPTIMIZED } : {}),
    ...(spinning ? {} : { extra: { session: { intra_op: { allow_spinning: '0' } } } }),
  };
}

/**
 * Creates an onnxruntime session from an in-memory model: graft's one session factory. Run it with
 * {@link runChecked} (./feeds.ts), which names a missing or mis-shaped feed before onnxruntime sees it.
 */
export async function createSession(model: Model | Uint8Array, opts: SessionOptions = {}): Promise<ort.InferenceSession> {
  const bytes = model instanceof Uint8Array ? model : await sessionBytes(model, opts);
  const options = ortSessionOptions(opts);
  try {
    return await ort.InferenceSession.create(bytes, options);
  } catch (e) {
    if (isOrtOutOfMemory((e as Error).message)) throw withOomAdvice(e);
    throw modelLoadError('the model', (e as Error).message, opts.device);
  }
}

/**
 * The one error for a session onnxruntime could not create (here or in a worker thread): the device's own
 * error when the device is the trouble (./device.ts), else what failed and how to re-export.
 */
export function modelLoadError(label: string, message: string, device: Device = defaultDevice()): Error {
  const onDevice = deviceError(device, message);
  if (onDevice) return onDevice;
  const err = new Error(
    `onnxruntime could not load ${label}: ${message.replace(/\.+$/, '')}. If this names an op or type, the model uses something onnxruntime's CPU provider lacks; re-export it with standard ops (opset 13–21).`,
  );
  err.name = 'ModelLoadError';
  return err;
}

/**
 * The bytes {@link createSession} opens for `model` on `opts.device`: lowered to standard ONNX and, on the CPU, with
 * depthwise Convs on the NCHWc kernel. For a caller that reopens a session many times (StepRunner) and keeps the bytes.
 */
export async function sessionBytes(model: Model, opts: SessionOptions = {}): Promise<Uint8Array> {
  const block = (opts.device ?? defaultDevice()) === 'cpu' ? await nchwcBlock() : null;
  return encodeModel(block ? forCpu(lowered(model), block) : lowered(model));
}

/**
 * The model as a CPU session runs it: depthwise and dense (larger than 1×1) Convs whose weights are not constants (a
 * training step's, and their gradient Convs) on onnxruntime's NCHWc kernel (runtime/nchwc-depthwise.ts,
 * runtime/nchwc-dense.ts), in a copy; the caller's model stays standard ONNX.
 */
function forCpu(model: Model, block: number): Model {
  const m = model.clone();
  const depthwise = nchwcDepthwise(m, block);
  // GRAFT_ORT_NCHWC_DENSE: 0 = depthwise only (the session-7 form), all = also 1×1 Convs (for A/B runs)
  const mode = process.env.GRAFT_ORT_NCHWC_DENSE;
  const dense = mode === '0' ? 0 : nchwcDense(m, block, { pointwise: mode === 'all' });
  return depthwise + dense ? m : model;
}

/** The model with graft-domain ops (used while differentiating) expanded into standard ONNX ops. */
export function lowered(model: Model): Model {
  if (!model.graph.nodes.some((n) => n.domain === GRAFT_DOMAIN)) return model;
  const m = model.clone();
  lowerGraftOps(new Emitter(m.graph, m.opset, 'lower/'));
  return m;
}

const ORT_TYPES: Partial<Record<DType, ort.Tensor.Type>> = {
  float32: 'float32',
  float64: 'float64',
  int64: 'int64',
  int32: 'int32',
  int16: 'int16',
  int8: 'int8',
  uint8: 'uint8',
  uint16: 'uint16',
  bool: 'bool',
  float16: 'float16',
};

/** Wraps a host tensor as an ort.Tensor (no copy). */
export function toOrt(t: Tensor): ort.Tensor {
  const type = ORT_TYPES[t.dtype];
  if (!type) throw new Error(`dtype ${t.dtype} cannot be fed to onnxruntime`);
  return new ort.Tensor(type, t.data as never, t.dims as number[]);
}

/** Wraps an ort.Tensor as a host tensor (no copy). */
export function fromOrt(t: ort.Tensor): Tensor {
  const dtype = (t.type === 'bool' ? 'bool' : t.type) as DType;
  return new Tensor(dtype, [...t.dims], t.data as TypedArray);
}

/** Runs a session on host tensors and returns host tensors; feeds are checked as by {@link runChecked}. */
export async function runHost(session: ort.InferenceSession, feeds: Record<string, Tensor>, outputs?: string[]): Promise<Record<string, Tensor>> {
  const f: Record<string, ort.Tensor> = {};
  for (const [k, v] of Object.entries(feeds)) f[k] = toOrt(v);
  const r = await runChecked(session, f, outputs);
  const out: Record<string, Tensor> = {};
  for (const [k, v] of Object.entries(r)) out[k] = fromOrt(v);
  return out;
}
