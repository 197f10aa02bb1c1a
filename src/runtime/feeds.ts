/**
 * The one checked way to run an onnxruntime session: before onnxruntime sees the feeds, {@link runChecked} checks
 * that every model input is fed, that no unknown name is fed, and that each feed has the input's dtype and static
 * dims, and otherwise throws a {@link FeedError} that names the input, the expected and the given shape, and how to
 * fix it (onnxruntime's own text names neither the shape the model wanted nor what to change).
 *
 * The inputs' metadata is read once per session (cached by session); a run costs one loop over the inputs and
 * their dims, with no allocation unless a check fails.
 */
import type * as ort from 'onnxruntime-node';
import { withOomAdvice } from './ort-errors.js';

/** One model input as onnxruntime declares it. `shape` undefined: unknown (or a scalar), any dims accepted. */
export interface InputSpec {
  readonly name: string;
  /** Tensor element type ('float32', 'int64', …); undefined for a non-tensor input (not checked). */
  readonly type?: string;
  /** Static dims are numbers; symbolic ones (e.g. "batch") are strings and accept any size (the same name, the same size). */
  readonly shape?: readonly (number | string)[];
}

/** What a feed needs for the check: onnxruntime tensors and graft's host Tensors both have these. */
export interface FeedLike {
  readonly type?: string;
  readonly dtype?: string;
  readonly dims: readonly number[];
}

/** How a failed check is worded. */
export interface FeedCheckOptions {
  /** Who fed the session, for the message (e.g. "the training step", "Network.predict"); default "graft". */
  what?: string;
  /** How to fix a mis-shaped feed; default: make the preprocessing match the model, or fix the batch's shape. */
  fix?: string;
}

/** A feed that does not fit the model's inputs (missing, unknown, wrong dtype or shape). */
export class FeedError extends Error {
  override name = 'FeedError';
}

/** The default advice for a mis-shaped feed; every flag named exists. */
export const SHAPE_FIX =
  'Make the preprocessing match the model: "size", "channels" and "layout" of "preprocess" in its model.json sidecar ' +
  '(or graft predict/eval --preprocess, graft train --image-size/--channels), or fix the shape of the batch you feed.';

const specsBySession = new WeakMap<object, readonly InputSpec[]>();

/** The inputs of `session` as onnxruntime declares them (read once per session, then cached). */
export function inputSpecs(session: ort.InferenceSession): readonly InputSpec[] {
  let specs = specsBySession.get(session);
  if (!specs) {
    specs = describeInputs(session.inputNames, (session as { inputMetadata?: readonly ort.InferenceSession.ValueMetadata[] }).inputMetadata);
    specsBySession.set(session, specs);
  }
  return specs;
}

/** Input specs from onnxruntime's names and (when the binding has them) input metadata, which is structured-cloneable. */
export function describeInputs(names: readonly string[], metadata: readonly ort.InferenceSession.ValueMetadata[] | undefined): InputSpec[] {
  return names.map((name) => {
    const m = metadata?.find((v) => v.name === name);
    if (!m?.isTensor) return { name };
    // onnxruntime reports an unknown shape and a scalar alike as []: accept any dims for both
    return m.shape.length ? { name, type: m.type, shape: [...m.shape] } : { name, type: m.type };
  });
}

/**
 * Runs `session` after {@link checkFeeds}; onnxruntime's out-of-memory errors come back with graft's advice.
 * @throws FeedError naming the input, the expected and the given shape, before onnxruntime runs.
 */
export async function runChecked(
  session: ort.InferenceSession,
  feeds: Record<string, ort.Tensor>,
  fetches?: readonly string[] | Record<string, ort.Tensor | null>,
  opts?: FeedCheckOptions,
): Promise<ort.InferenceSession.ReturnType> {
  checkFeeds(inputSpecs(session), feeds, opts);
  try {
    return fetches ? await session.run(feeds, fetches as ort.InferenceSession.FetchesType) : await session.run(feeds);
  } catch (e) {
    throw withOomAdvice(e);
  }
}

/** Checks `feeds` against `inputs` (see the module comment). O(inputs × rank); allocates only to build an error. */
export function checkFeeds(inputs: readonly InputSpec[], feeds: Record<string, FeedLike>, opts?: FeedCheckOptions): void {
  for (const spec of inputs) {
    const t = feeds[spec.name];
    if (t === undefined) throw missingFeed(inputs, feeds, spec.name, opts);
    const type = t.type ?? t.dtype;
    if (spec.type !== undefined && type !== undefined && type !== spec.type)
      throw new FeedError(
        `Model input "${spec.name}" was fed ${type} data by ${opts?.what ?? 'graft'}, but the model expects ${spec.type}. ` +
          `Feed it as ${spec.type}, or re-export the model to take ${type} input.`,
      );
    if (spec.shape !== undefined && !dimsFit(spec.shape, t.dims))
      throw new FeedError(
        `Model input "${spec.name}" was fed shape [${t.dims.join(', ')}] by ${opts?.what ?? 'graft'}, but the model expects ` +
          `${shapeText(spec.shape)}${spec.shape.some((d) => typeof d === 'string') ? ' (named dims take any size)' : ''}. ${opts?.fix ?? SHAPE_FIX}`,
      );
  }
  let fed = 0;
  for (const _ in feeds) fed++;
  if (fed !== inputs.length) {
    const known = new Set(inputs.map((s) => s.name));
    const unknown = Object.keys(feeds).filter((k) => !known.has(k));
    throw new FeedError(
      `${opts?.what ?? 'graft'} fed ${unknown.map((k) => `"${k}"`).join(', ')}, which the model does not take; its inputs are ${inputList(inputs)}. ` +
        'Feed only those names (is this the model the feeds were built for?).',
    );
  }
}

/** Whether `dims` fits `shape`: same rank, static dims equal, each symbolic name bound to one size. */
function dimsFit(shape: readonly (number | string)[], dims: readonly number[]): boolean {
  if (shape.length !== dims.length) return false;
  for (let i = 0; i < shape.length; i++) {
    const d = shape[i]!;
    if (typeof d === 'number') {
      if (d >= 0 && d !== dims[i]) return false; // a negative dim is onnxruntime's "unknown"
    } else if (d !== '') {
      for (let j = 0; j < i; j++) if (shape[j] === d && dims[j] !== dims[i]) return false;
    }
  }
  return true;
}

function shapeText(shape: readonly (number | string)[] | undefined): string {
  return shape ? `[${shape.map((d) => ((typeof d === 'number' && d < 0) || d === '' ? '?' : d)).join(', ')}]` : 'any shape';
}

function inputList(inputs: readonly InputSpec[]): string {
  return inputs.map((s) => `"${s.name}" ${shapeText(s.shape)}${s.type ? ` ${s.type}` : ''}`).join(', ');
}

function missingFeed(inputs: readonly InputSpec[], feeds: Record<string, FeedLike>, name: string, opts?: FeedCheckOptions): FeedError {
  const given = Object.keys(feeds);
  return new FeedError(
    `Model input "${name}" was not fed by ${opts?.what ?? 'graft'}. The model expects ${inputList(inputs)}; ` +
      `it was fed ${given.length ? given.map((k) => `"${k}"`).join(', ') : 'nothing'}. ` +
      'Feed every input the model declares; a model with inputs beyond its one image input must be re-exported with only that input ' +
      '(its other inputs folded into initializers).',
  );
}
