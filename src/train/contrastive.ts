/**
 * SetFit's contrastive phase for few-shot text classification (Tunstall et al. 2022): before the head trains, the
 * encoder is fine-tuned on pairs of training texts, same label → cosine similarity 1, different → 0, with
 * SetFit's CosineSimilarityLoss, MSE(cos(u, v), y). It runs through the one training loop (`Network.fit` →
 * `compileTrainStep`) on a pair view of the encoder:
 *
 * - {@link PairSource}: a batch source whose sample is one pair, its row the two texts' token ids side by side,
 *   each right-padded to the longer of the batch ([n, 2T] int64); the target is the pair's label (1 or 0).
 * - {@link pairEncoder}: the encoder with a Reshape in front ([n, 2T] → [2n, T]: row 2i is u_i, 2i+1 is v_i) and
 *   one behind ([2n, D] → [n, 2D]), sharing the encoder's parameter names, so its trained weights fold back.
 * - {@link cosineSimilarityLoss}: the loss as ONNX ops (Slice, Mul, ReduceSum, Sqrt, Div, Sub), differentiated by
 *   graft's rules (gradient-checked by finite differences in test/train/contrastive.test.ts).
 */
import { makeTokenizer, PAD_ID, type TextTokenizer, type TokenizerSpec } from '../data/tokenize.js';
import { Emitter } from '../ir/emit.js';
import type { Model } from '../ir/model.js';
import type { Optimizer } from '../optim/index.js';
import type { BatchSource } from '../step/batches.js';
import type { LossSpec } from '../step/compile.js';
import { Rng } from '../tensor.js';
import { Network } from './network.js';

/** Name of the pair view's input: two texts' token ids side by side, int64 [n, 2T]. */
export const PAIR_INPUT = 'pair_ids';
/** Name of the pair view's output: the two embeddings side by side, float32 [n, 2D]. */
export const PAIR_OUTPUT = 'pair_embedding';

/** One training pair: indices of two texts and whether they share a label. */
export interface TextPair {
  a: number;
  b: number;
  same: boolean;
}

/**
 * SetFit's pair sampling: `iterations` rounds; in each, every text gets one positive partner (another text of its
 * label, when there is one) and one negative partner (a text of another label, when there is one). Seeded.
 */
export function samplePairs(labels: ArrayLike<number>, iterations: number, seed = 0): TextPair[] {
  const rng = new Rng(seed);
  const byLabel = new Map<number, number[]>();
  for (let i = 0; i < labels.length; i++) {
    const l = labels[i]!;
    if (!byLabel.has(l)) byLabel.set(l, []);
    byLabel.get(l)!.push(i);
  }
  const pick = (xs: readonly number[]) => xs[Math.floor(rng.next() * xs.length)]!;
  const pairs: TextPair[] = [];
  for (let r = 0; r < iterations; r++)
    for (let i = 0; i < labels.length; i++) {
      const same = byLabel.get(labels[i]!)!.filter((j) => j !== i);
      if (same.length) pairs.push({ a: i, b: pick(same), same: true });
      const other = [...byLabel.keys()].filter((l) => l !== labels[i]);
      if (other.length) pairs.push({ a: i, b: pick(byLabel.get(pick(other))!), same: false });
    }
  return pairs;
}

/** Pairs of texts as a batch source for {@link pairEncoder}: row = [ids(a) | ids(b)], each padded to the batch's T. */
export class PairSource implements BatchSource {
  readonly sampleShape: readonly number[] = [2];
  readonly sampleDtype = 'int64';
  readonly numClasses = 2;
  private readonly ids: number[][];
  private readonly padId: bigint;
  constructor(
    texts: readonly string[],
    readonly pairs: readonly TextPair[],
    tokenizer: TextTokenizer,
  ) {
    this.ids = texts.map((t) => tokenizer.encode(t));
    this.padId = BigInt(tokenizer.spec.kind === 'hf' ? tokenizer.spec.padId : PAD_ID);
  }
  get length(): number {
    return this.pairs.length;
  }
  private T(indices: ArrayLike<number>): number {
    let T = 1;
    for (let i = 0; i < indices.length; i++) {
      const p = this.pairs[indices[i]!]!;
      T = Math.max(T, this.ids[p.a]!.length, this.ids[p.b]!.length);
    }
    return T;
  }
  batchSampleShape(indices: ArrayLike<number>): readonly number[] {
    return [2 * this.T(indices)];
  }
  fill(indices: ArrayLike<number>, x: Float32Array | BigInt64Array, y: BigInt64Array): void {
    if (!(x instanceof BigInt64Array)) throw new Error('PairSource.fill: pairs fill int64 token-id batches; allocate them with the sampleDtype (int64).');
    const W = x.length / indices.length;
    const T = W / 2;
    x.fill(this.padId);
    for (let r = 0; r < indices.length; r++) {
      const p = this.pairs[indices[r]!]!;
      [p.a, p.b].forEach((t, half) => {
        const row = this.ids[t]!;
        for (let k = 0; k < row.length; k++) x[r * W + half * T + k] = BigInt(row[k]!);
      });
      y[r] = p.same ? 1n : 0n;
    }
  }
}

/**
 * The pair view of a text encoder (token ids in, one embedding of `dims` values out): input {@link PAIR_INPUT}
 * [n, 2T] reshaped to [2n, T] for the encoder, its embedding [2n, D] reshaped to {@link PAIR_OUTPUT} [n, 2D].
 * Parameter names are the encoder's.
 */
export function pairEncoder(encoder: Model, dims: number): Model {
  const m = encoder.clone();
  const g = m.graph;
  const inputs = g.inputs.filter((v) => !g.initializers.has(v.name));
  if (inputs.length !== 1 || g.outputs.length < 1)
    throw new Error(`pairEncoder: the encoder needs one token-id input and an embedding output; it has inputs ${inputs.map((v) => v.name).join(', ')}.`);
  const ids = inputs[0]!.name;
  const emb = g.outputs[0]!.name;
  g.inputs = g.inputs.map((v) => (v.name === ids ? { name: PAIR_INPUT, dtype: 'int64', shape: ['N', 'T2'] } : v));
  const e = new Emitter(g, m.opset, 'pair/');
  // [n, 2T] → [2n, T]: rows alternate u_i, v_i
  const n = e.op('Slice', [e.op('Shape', [PAIR_INPUT]), e.ints([0]), e.ints([1])]);
  const rows = e.op('Concat', [e.op('Mul', [n, e.ints([2])]), e.ints([-1])], { axis: 0 });
  g.addNode('Reshape', [PAIR_INPUT, rows], [ids], {}, 'pair/split');
  // [2n, D] → [n, 2D]: row i is [u_i | v_i]
  const out = e.op('Reshape', [emb, e.ints([-1, 2 * dims])]);
  g.addNode('Identity', [out], [PAIR_OUTPUT], {}, 'pair/out');
  g.outputs = [{ name: PAIR_OUTPUT, dtype: 'float32', shape: ['N', 2 * dims] }];
  g.topoSort();
  return m;
}

/**
 * SetFit's CosineSimilarityLoss on side-by-side embeddings `pairs` [n, 2D] and pair labels `target` [n] (int64
 * 1/0 or float): mean over pairs of (cos(u, v) − y)², u = pairs[:, :D], v = pairs[:, D:].
 */
export function cosineSimilarityLoss(e: Emitter, pairs: string, target: string, dims: number): string {
  const u = e.op('Slice', [pairs, e.ints([0]), e.ints([dims]), e.ints([1])]);
  const v = e.op('Slice', [pairs, e.ints([dims]), e.ints([2 * dims]), e.ints([1])]);
  const dot = e.reduceSum(e.mul(u, v), [1], false);
  const nu = e.op('Sqrt', [e.reduceSum(e.mul(u, u), [1], false)]);
  const nv = e.op('Sqrt', [e.reduceSum(e.mul(v, v), [1], false)]);
  // as torch.cosine_similarity: x·y / max(|x|·|y|, eps)
  const cos = e.div(dot, e.op('Max', [e.mul(nu, nv), e.scalar(1e-8)]));
  const y = e.op('Cast', [target], { to: 1 });
  const d = e.sub(cos, y);
  return e.reduceMean(e.mul(d, d), 'all', false);
}

/** The step's loss for the pair view (a custom loss with int64 pair labels). */
export function cosineLossSpec(dims: number): LossSpec {
  return { kind: 'custom', targetDtype: 'int64', build: (e, output, target) => ({ loss: cosineSimilarityLoss(e, output, target, dims) }) };
}

/** Options of {@link contrastiveTune}. */
export interface ContrastiveOptions {
  /** SetFit's iterations: pairs per text are 2 × this (one positive, one negative per round). */
  iterations: number;
  epochs?: number;
  batchSize?: number;
  optimizer: Optimizer & { readonly lr: number };
  seed?: number;
  threads?: number;
}

/**
 * Fine-tunes `encoder` (token ids → embedding) on pairs of the labelled `texts` with the cosine-similarity loss
 * and returns a copy with the trained weights (the same graph and parameter names), ready for a head.
 * @returns the tuned encoder, the mean loss of each epoch and the number of pairs.
 */
export async function contrastiveTune(
  encoder: Model,
  texts: readonly string[],
  labels: ArrayLike<number>,
  tokenizer: TokenizerSpec | TextTokenizer,
  opts: ContrastiveOptions,
): Promise<{ encoder: Model; losses: number[]; pairs: number }> {
  const tok = 'encodeBatch' in tokenizer ? tokenizer : makeTokenizer(tokenizer);
  const dims = embeddingDims(encoder);
  const pairs = samplePairs(labels, opts.iterations, opts.seed ?? 0);
  if (!pairs.length) throw new Error('contrastive: no pairs to train on; it needs at least two texts of one label or of two labels.');
  const net = new Network(pairEncoder(encoder, dims)).unfreeze();
  const r = await net.fit(new PairSource(texts, pairs, tok), {
    epochs: opts.epochs ?? 1,
    batchSize: opts.batchSize ?? 16,
    optimizer: opts.optimizer,
    loss: cosineLossSpec(dims),
    seed: opts.seed ?? 0,
    featureCache: false,
    ...(opts.threads ? { threads: opts.threads } : {}),
  });
  const tuned = encoder.clone();
  for (const name of tuned.graph.initializers.keys()) {
    const t = net.model.graph.initializers.get(name);
    if (t) tuned.graph.initializers.set(name, t);
  }
  return { encoder: tuned, losses: r.history.map((h) => h.train_loss!), pairs: pairs.length };
}

/** The embedding width of a text encoder: its output's last dim. */
function embeddingDims(encoder: Model): number {
  const d = encoder.graph.outputs[0]?.shape?.at(-1);
  if (typeof d === 'number') return d;
  throw new Error(`contrastive: the encoder's output "${encoder.graph.outputs[0]?.name}" has no fixed width; export it with a static embedding size.`);
}
