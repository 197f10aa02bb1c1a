/**
 * Classifying texts with a trained text model (encoder + head in one ONNX graph, its tokenizer in
 * `<model>.tokenizer.json` beside it), shared by `graft predict`, `graft eval` and `graft serve`: the texts are
 * tokenized, batched by length and run through the whole exported model, exactly as a user of the ONNX file would.
 * Probabilities are the calibrated ones (softmax(logits / temperature)), as for images (classify.ts).
 */
import { makeTokenizer, padTokenIds, type TextTokenizer, type TokenBatch, tokenizerPath } from '../data/tokenize.js';
import type { Model } from '../ir/model.js';
import { runChecked } from '../runtime/feeds.js';
import { createSession, ort } from '../runtime/session.js';
import { type Classified, calibrateRows } from './classify.js';
import { Network } from './network.js';

const TEXT_PREDICT_FEEDS = { what: 'text classification' };

/** What a text model's graph and sidecar say about classifying with it (no session). */
export interface TextClassifierInfo {
  file: string;
  /** The token-id input (int64 [N, T]). */
  input: string;
  /** "logits" (softmax applied here after dividing by `temperature`), else "probabilities" or the first output. */
  output: string;
  softmax: boolean;
  tokenizer: TextTokenizer;
  /** The id the tokenizer pads batches with (right padding). */
  padId: number;
  labels: string[];
  hasLabels: boolean;
  temperature: number;
}

/** A loaded text classifier: {@link TextClassifierInfo} plus a session on the whole model. */
export interface TextClassifier extends TextClassifierInfo {
  session: ort.InferenceSession;
}

/** Whether `file` is a text model: an .onnx with a `.tokenizer.json` beside it. */
export function isTextModel(file: string): boolean {
  return Network.load(file).text !== undefined;
}

/**
 * Reads a text model's description without opening a session (`graft serve` runs it through its own runner).
 * @throws naming the file when it has no tokenizer beside it (then it is not a text model).
 */
export function readTextClassifier(file: string): { info: TextClassifierInfo; model: Model } {
  const net = Network.load(file);
  if (!net.text)
    throw new Error(`${file} is not a text model: it has no tokenizer ${tokenizerPath(file)} beside it. Pass a model graft trained with --encoder.`);
  const g = net.model.graph;
  const input = g.inputs.find((v) => !g.initializers.has(v.name))!;
  const outs = g.outputs.map((o) => o.name);
  const output = outs.includes('logits') ? 'logits' : outs.includes('probabilities') ? 'probabilities' : outs[0]!;
  const classes = g.outputs.find((o) => o.name === output)?.shape?.at(-1);
  const labels = net.labels ?? (typeof classes === 'number' ? Array.from({ length: classes }, (_, i) => String(i)) : []);
  const info: TextClassifierInfo = {
    file,
    input: input.name,
    output,
    softmax: output !== 'probabilities',
    tokenizer: makeTokenizer(net.text, tokenizerPath(file)),
    padId: net.text.kind === 'hf' ? net.text.padId : 0,
    labels: [...labels],
    hasLabels: !!net.labels,
    temperature: net.temperature ?? 1,
  };
  return { info, model: net.model };
}

/**
 * Opens a text classifier on `file`.
 * @throws naming the file when it has no tokenizer beside it (then it is not a text model).
 */
export async function loadTextClassifier(file: string): Promise<TextClassifier> {
  const { info, model } = readTextClassifier(file);
  return { ...info, session: await createSession(model) };
}

/** Runs one padded token-id batch through a text model; resolves to its output rows ([n, k], uncalibrated). */
export type RunTokenBatch = (batch: TokenBatch) => Promise<Float32Array>;

/**
 * Class probabilities of `texts` (one row each, in order) with `run` doing inference: the texts are tokenized,
 * sorted by length, cut into batches of `batchSize` (each padded to its longest text) and the outputs calibrated.
 * `classifyTexts` runs it on a session, `graft serve` on its runner.
 */
export async function classifyTokenized(
  clf: TextClassifierInfo,
  texts: readonly string[],
  run: RunTokenBatch,
  opts: { batchSize?: number; onBatch?: (n: number) => void } = {},
): Promise<Classified> {
  const bs = opts.batchSize ?? 32;
  const ids = texts.map((t) => clf.tokenizer.encode(t));
  const order = texts.map((_, i) => i).sort((a, b) => ids[a]!.length - ids[b]!.length);
  let k = 0;
  let probabilities = new Float32Array(0);
  for (let b = 0; b < order.length; b += bs) {
    const part = order.slice(b, b + bs);
    const batch = padTokenIds(
      part.map((i) => ids[i]!),
      clf.padId,
    );
    const out = (await run(batch)).slice();
    k = out.length / part.length;
    calibrateRows(clf, out, k);
    if (probabilities.length === 0) probabilities = new Float32Array(texts.length * k);
    part.forEach((i, r) => {
      probabilities.set(out.subarray(r * k, (r + 1) * k), i * k);
    });
    opts.onBatch?.(part.length);
  }
  return { probabilities, classes: k, failed: new Map() };
}

/** Class probabilities of `texts` (one row each, in order), `batchSize` texts of similar length per run. */
export async function classifyTexts(
  clf: TextClassifier,
  texts: readonly string[],
  opts: { batchSize?: number; onBatch?: (n: number) => void } = {},
): Promise<Classified> {
  return classifyTokenized(
    clf,
    texts,
    async (batch) => {
      const r = await runChecked(clf.session, { [clf.input]: new ort.Tensor('int64', batch.ids, batch.dims) }, undefined, TEXT_PREDICT_FEEDS);
      return r[clf.output]!.data as Float32Array;
    },
    opts,
  );
}
