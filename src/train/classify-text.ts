/**
 * Classifying texts with a trained text model (encoder + head in one ONNX graph, its tokenizer in
 * `<model>.tokenizer.json` beside it), shared by `graft predict` and `graft eval`: the texts are tokenized,
 * batched by length and run through the whole exported model, exactly as a user of the ONNX file would.
 * Probabilities are the calibrated ones (softmax(logits / temperature)), as for images (classify.ts).
 */
import { makeTokenizer, type TextTokenizer, tokenizerPath } from '../data/tokenize.js';
import { runChecked } from '../runtime/feeds.js';
import { createSession, ort } from '../runtime/session.js';
import { type Classified, softmaxRows } from './classify.js';
import { Network } from './network.js';

const TEXT_PREDICT_FEEDS = { what: 'text classification' };

/** A loaded text classifier: a session on the whole model plus its tokenizer, labels and temperature. */
export interface TextClassifier {
  file: string;
  session: ort.InferenceSession;
  input: string;
  /** "logits" (softmax applied here after dividing by `temperature`), else "probabilities" or the first output. */
  output: string;
  softmax: boolean;
  tokenizer: TextTokenizer;
  labels: string[];
  hasLabels: boolean;
  temperature: number;
}

/** Whether `file` is a text model: an .onnx with a `.tokenizer.json` beside it. */
export function isTextModel(file: string): boolean {
  return Network.load(file).text !== undefined;
}

/**
 * Opens a text classifier on `file`.
 * @throws naming the file when it has no tokenizer beside it (then it is not a text model).
 */
export async function loadTextClassifier(file: string): Promise<TextClassifier> {
  const net = Network.load(file);
  if (!net.text)
    throw new Error(`${file} is not a text model: it has no tokenizer ${tokenizerPath(file)} beside it. Pass a model graft trained with --encoder.`);
  const g = net.model.graph;
  const input = g.inputs.find((v) => !g.initializers.has(v.name))!;
  const outs = g.outputs.map((o) => o.name);
  const output = outs.includes('logits') ? 'logits' : outs.includes('probabilities') ? 'probabilities' : outs[0]!;
  const session = await createSession(net.model);
  const classes = g.outputs.find((o) => o.name === output)?.shape?.at(-1);
  const labels = net.labels ?? (typeof classes === 'number' ? Array.from({ length: classes }, (_, i) => String(i)) : []);
  return {
    file,
    session,
    input: input.name,
    output,
    softmax: output !== 'probabilities',
    tokenizer: makeTokenizer(net.text, tokenizerPath(file)),
    labels: [...labels],
    hasLabels: !!net.labels,
    temperature: net.temperature ?? 1,
  };
}

/** Class probabilities of `texts` (one row each, in order), `batchSize` texts of similar length per run. */
export async function classifyTexts(
  clf: TextClassifier,
  texts: readonly string[],
  opts: { batchSize?: number; onBatch?: (n: number) => void } = {},
): Promise<Classified> {
  const bs = opts.batchSize ?? 32;
  const ids = texts.map((t) => clf.tokenizer.encode(t));
  const order = texts.map((_, i) => i).sort((a, b) => ids[a]!.length - ids[b]!.length);
  let k = 0;
  let probabilities = new Float32Array(0);
  for (let b = 0; b < order.length; b += bs) {
    const part = order.slice(b, b + bs);
    const batch = clf.tokenizer.encodeBatch(part.map((i) => texts[i]!));
    const r = await runChecked(clf.session, { [clf.input]: new ort.Tensor('int64', batch.ids, batch.dims) }, undefined, TEXT_PREDICT_FEEDS);
    const out = (r[clf.output]!.data as Float32Array).slice();
    k = out.length / part.length;
    if (clf.softmax) {
      if (clf.temperature !== 1) for (let i = 0; i < out.length; i++) out[i]! /= clf.temperature;
      softmaxRows(out, k);
    }
    if (probabilities.length === 0) probabilities = new Float32Array(texts.length * k);
    part.forEach((i, r) => {
      probabilities.set(out.subarray(r * k, (r + 1) * k), i * k);
    });
    opts.onBatch?.(part.length);
  }
  return { probabilities, classes: k, failed: new Map() };
}
