/**
 * Text models in `graft serve`: texts from a request body (`{"text": "…"}` or `{"texts": [...]}`) or an OIP BYTES
 * input, checked (one clear 400 per bad text) and tokenized server-side with the tokenizer beside the model, the
 * same code and the same batching as `graft predict` (train/classify-text.ts).
 */
import { padTokenIds } from '../data/tokenize.js';
import { labelRows } from '../train/classify.js';
import { classifyTokenized, type TextClassifierInfo } from '../train/classify-text.js';
import type { HostTensor } from './contract.js';
import { badRequest } from './errors.js';
import type { ServedModel } from './repository.js';

/** Texts one request may carry at most (the body limit bounds their size). */
export const MAX_TEXTS = 4096;

const SHAPE = '{"text": "some text"} or {"texts": ["first text", "second text"]}';

/** Checks one text of a request: a string with something besides white space. */
function checkText(v: unknown, what: string): string {
  if (typeof v !== 'string') throw badRequest(`${what} is ${v === null ? 'null' : typeof v}, not a string; send each text as a JSON string.`);
  if (!v.trim()) throw badRequest(`${what} is empty (or only white space); send text to classify, or leave it out.`);
  return v;
}

/** The texts of a classify request body (parsed JSON). @throws HttpError 400 naming the field and the fix. */
export function requestTexts(body: unknown): string[] {
  if (body === null || typeof body !== 'object' || Array.isArray(body)) throw badRequest(`A text model's /classify takes a JSON object: ${SHAPE}.`);
  const b = body as Record<string, unknown>;
  const keys = Object.keys(b).filter((k) => k === 'text' || k === 'texts');
  if (keys.length !== 1)
    throw badRequest(`${keys.length ? 'Both "text" and "texts" are given' : 'The body has neither "text" nor "texts"'}; send exactly one: ${SHAPE}.`);
  if ('text' in b) return [checkText(b.text, '"text"')];
  if (!Array.isArray(b.texts)) throw badRequest(`"texts" must be a list of strings: ${SHAPE}.`);
  if (!b.texts.length) throw badRequest(`"texts" is an empty list; send at least one text: ${SHAPE}.`);
  if (b.texts.length > MAX_TEXTS)
    throw badRequest(`"texts" holds ${b.texts.length} texts, more than ${MAX_TEXTS} per request; split them over several requests.`);
  return b.texts.map((t, i) => checkText(t, `"texts"[${i}]`));
}

/**
 * An OIP BYTES input of texts ([n] or [n, 1] strings) as the model's token-id tensor: INT64 [n, T], right-padded
 * with the tokenizer's pad id to the longest.
 */
export function textTensor(text: TextClassifierInfo, values: unknown[], shape: readonly number[], name: string): HostTensor {
  if (shape.length !== 1 && !(shape.length === 2 && shape[1] === 1))
    throw badRequest(`Input "${name}" (BYTES texts) must have shape [n] (or [n, 1]): one text per row; it has [${shape.join(', ')}].`);
  const texts = values.map((v, i) => checkText(v, `Input "${name}" (BYTES) element ${i}`));
  const b = padTokenIds(
    texts.map((t) => text.tokenizer.encode(t)),
    text.padId,
  );
  return { datatype: 'INT64', shape: [...b.dims], data: b.ids };
}

/** Runs a request on the served model (through the repository, so a hot reload in between does not refuse it). */
export type Run = (inputs: Record<string, HostTensor>, outputs?: readonly string[]) => Promise<Record<string, HostTensor>>;

/**
 * POST .../classify on a text model: the texts → `[{index, label, p, top}]` in request order, probabilities
 * calibrated as `graft predict` reports them; runs of at most the runner's batch, each padded to its longest text.
 */
export async function classifyTextRequest(m: ServedModel, text: TextClassifierInfo, run: Run, body: unknown, opts: { topK: number; threshold?: number }) {
  const texts = requestTexts(body);
  const classes = text.labels.length;
  const r = await classifyTokenized(
    text,
    texts,
    async (batch) => {
      const t = (await run({ [text.input]: { datatype: 'INT64', shape: [...batch.dims], data: batch.ids } }, [text.output]))[text.output]!;
      if (t.shape.length !== 2 || t.shape[0] !== batch.dims[0] || (classes && t.shape[1] !== classes))
        throw new Error(
          `model "${m.name}" output "${text.output}" has shape [${t.shape.join(', ')}] for ${batch.dims[0]} text(s), but its labels list ${classes} classes; fix "labels" in its model.json`,
        );
      return t.data as Float32Array;
    },
    { batchSize: m.runner.info.maxBatchSize },
  );
  const names = texts.map((_, i) => String(i));
  return labelRows(r, text.labels, names, opts).map(({ file, ...row }) => ({ index: Number(file), ...row }));
}
