/**
 * The Open Inference Protocol (KServe v2) REST tensors: parsing an infer request's JSON into {@link HostTensor}s
 * checked against the model (names, datatypes, shapes, element counts), BYTES inputs holding base64 images
 * decoded with the model's own preprocessing (the decode path of `graft predict`), BYTES inputs holding texts
 * tokenized with a text model's own tokenizer (server/text.ts), and the response's output
 * tensors, with Triton's classification extension (`"parameters": {"classification": k}` → "score:index:label").
 */
import { z } from 'zod';
import { batchDims, type DecodeLimits, decodeBatch, ImageDecodeError } from '../data/image.js';
import { calibrateRows } from '../train/classify.js';
import type { HostTensor, OipDatatype } from './contract.js';
import { badRequest } from './errors.js';
import type { ServedModel } from './repository.js';
import { textTensor } from './text.js';

const DATATYPES = ['BOOL', 'UINT8', 'INT8', 'INT16', 'INT32', 'INT64', 'FP16', 'FP32', 'FP64', 'BYTES'] as const;

const parametersSchema = z.record(z.string(), z.unknown()).optional();
const inferRequestSchema = z.object({
  id: z.string().optional(),
  parameters: parametersSchema,
  inputs: z
    .array(
      z.object({
        name: z.string(),
        shape: z.array(z.number().int().nonnegative()),
        datatype: z.enum(DATATYPES),
        parameters: parametersSchema,
        data: z.unknown(),
      }),
    )
    .min(1),
  outputs: z
    .array(
      z.object({
        name: z.string(),
        parameters: z.object({ classification: z.number().int().positive().optional(), binary_data: z.boolean().optional() }).catchall(z.unknown()).optional(),
      }),
    )
    .optional(),
});

/** An infer request body as the OIP defines it (checked structure; the tensors are checked by {@link requestTensors}). */
export type InferRequest = z.infer<typeof inferRequestSchema>;

/** Checks the structure of an infer request body. @throws HttpError 400 naming the field. */
export function parseInferRequest(body: unknown): InferRequest {
  if (body === undefined || body === null || typeof body !== 'object')
    throw badRequest(
      'The infer request body must be a JSON object such as {"inputs": [{"name": "input", "shape": [1, 3], "datatype": "FP32", "data": [1, 2, 3]}]}.',
    );
  const r = inferRequestSchema.safeParse(body);
  if (r.success) return r.data;
  const issue = r.error.issues[0]!;
  const where = issue.path.length ? issue.path.map((p) => (typeof p === 'number' ? `[${p}]` : `.${String(p)}`)).join('') : 'the body';
  throw badRequest(
    `Invalid infer request at ${where.replace(/^\./, '')}: ${issue.message}. An input is {"name", "shape": [ints], "datatype": one of ${DATATYPES.join('/')}, "data": [...]}; see docs/cli/serve.md.`,
  );
}

/** Flattens nested arrays (OIP allows row-major flat or nested data). */
function flatten(data: unknown, name: string): unknown[] {
  if (!Array.isArray(data)) throw badRequest(`Input "${name}": "data" must be an array (flat, row-major, or nested by the shape).`);
  if (!data.some(Array.isArray)) return data;
  const out: unknown[] = [];
  const walk = (v: unknown, depth: number) => {
    if (depth > 32) throw badRequest(`Input "${name}": "data" is nested deeper than 32 levels.`);
    if (Array.isArray(v)) for (const x of v) walk(x, depth + 1);
    else out.push(v);
  };
  walk(data, 0);
  return out;
}

const INT_RANGE: Partial<Record<OipDatatype, [number, number]>> = {
  UINT8: [0, 255],
  INT8: [-128, 127],
  INT16: [-32768, 32767],
  INT32: [-2147483648, 2147483647],
};

/** Converts checked JSON values into the typed array of `datatype`. */
function typed(values: unknown[], datatype: Exclude<OipDatatype, 'BYTES'>, name: string): HostTensor['data'] {
  const bad = (i: number, what: string) =>
    badRequest(`Input "${name}" (${datatype}): element ${i} is ${JSON.stringify(values[i])?.slice(0, 40)}, not ${what}.`);
  switch (datatype) {
    case 'BOOL': {
      const a = new Uint8Array(values.length);
      values.forEach((v, i) => {
        if (typeof v !== 'boolean') throw bad(i, 'true or false');
        a[i] = v ? 1 : 0;
      });
      return a;
    }
    case 'FP32':
    case 'FP64': {
      const a = datatype === 'FP32' ? new Float32Array(values.length) : new Float64Array(values.length);
      values.forEach((v, i) => {
        if (typeof v !== 'number') throw bad(i, 'a number');
        a[i] = v;
      });
      return a;
    }
    case 'INT64': {
      const a = new BigInt64Array(values.length);
      values.forEach((v, i) => {
        if (typeof v !== 'number' || !Number.isSafeInteger(v)) throw bad(i, 'a whole number (within ±2^53)');
        a[i] = BigInt(v);
      });
      return a;
    }
    case 'FP16':
      throw badRequest(`Input "${name}" is FP16, which graft serve does not take as JSON; export the model with FP32 inputs.`);
    default: {
      const [lo, hi] = INT_RANGE[datatype]!;
      const a =
        datatype === 'UINT8'
          ? new Uint8Array(values.length)
          : datatype === 'INT8'
            ? new Int8Array(values.length)
            : datatype === 'INT16'
              ? new Int16Array(values.length)
              : new Int32Array(values.length);
      values.forEach((v, i) => {
        if (typeof v !== 'number' || !Number.isInteger(v) || v < lo || v > hi) throw bad(i, `a whole number in [${lo}, ${hi}]`);
        a[i] = v;
      });
      return a;
    }
  }
}

const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=|[A-Za-z0-9+/]{2,3})?$/;

/** Decodes a base64 string strictly (truncated or foreign text is refused, where Buffer.from would skip it). */
export function base64Bytes(s: string, what: string): Buffer {
  const t = s.replace(/\s+/g, '');
  if (t.length % 4 === 1 || !BASE64.test(t))
    throw badRequest(`${what} is not valid base64 (truncated, or not base64 text); send the image file's bytes base64-encoded.`);
  return Buffer.from(t, 'base64');
}

/** Decodes base64 images for the model's image input with its own preprocessing; one error names the image. */
async function imageTensor(values: unknown[], shape: number[], served: ServedModel, name: string, limits: DecodeLimits): Promise<HostTensor> {
  const image = served.image;
  if (!image || image.input !== name)
    throw badRequest(
      `Input "${name}" of model "${served.name}" takes ${served.runner.info.inputs.find((s) => s.name === name)?.datatype ?? 'numbers'}, not BYTES: only a model with preprocessing (model.json "preprocess") takes base64 images, on its image input${image ? ` "${image.input}"` : ''}${served.imageError ? ` (${served.imageError})` : ''}.`,
    );
  if (shape.length !== 1 && !(shape.length === 2 && shape[1] === 1))
    throw badRequest(`Input "${name}" (BYTES images) must have shape [n] (or [n, 1]): one base64 image per row; it has [${shape.join(', ')}].`);
  const bufs = values.map((v, i) => {
    if (typeof v !== 'string') throw badRequest(`Input "${name}" (BYTES): element ${i} is not a string; send each image as a base64 string.`);
    return base64Bytes(v, `Input "${name}" element ${i}`);
  });
  try {
    const b = await decodeBatch(bufs, image.preprocess, limits);
    return { datatype: 'FP32', shape: batchDims(image.preprocess, bufs.length), data: b.data };
  } catch (e) {
    if (e instanceof ImageDecodeError) throw badRequest(`Input "${name}": ${decodeMessage(e, '')}`);
    throw e;
  }
}

/** A decode error for a client: the image named by `name` (for `buffer #i`), the CLI's advice replaced by the server's. */
export function decodeMessage(e: ImageDecodeError, name: string | ((i: number) => string)): string {
  return e.message
    .replace(/buffer #(\d+)/, (_, i) => (typeof name === 'string' ? `${name}#${i}` : name(Number(i))))
    .replace(/\s*Re-encode or remove the file.*$/, ' Send the image file itself (JPEG, PNG, WebP, GIF, TIFF or AVIF).');
}

/**
 * The runner's inputs for a request: every model input given once, with the model's datatype (or BYTES images
 * for the image input, decoded within `limits`) and as many elements as the shape says. The shape itself is checked by the runner
 * (tensors.ts `checkRequest`, the one check both runners make).
 * @throws HttpError 400 naming the input and what to send instead.
 */
export async function requestTensors(req: InferRequest, served: ServedModel, limits: DecodeLimits = {}): Promise<Record<string, HostTensor>> {
  const specs = served.runner.info.inputs;
  const out: Record<string, HostTensor> = {};
  for (const inp of req.inputs) {
    const spec = specs.find((s) => s.name === inp.name);
    if (!spec)
      throw badRequest(
        `Model "${served.name}" has no input "${inp.name}"; its inputs are ${specs.map((s) => `"${s.name}" ${s.datatype} [${s.shape.join(', ')}]`).join(', ')}.`,
      );
    if (out[inp.name]) throw badRequest(`Input "${inp.name}" is given twice; send each input once.`);
    const count = inp.shape.reduce((a, b) => a * b, 1);
    const values = flatten(inp.data, inp.name);
    if (values.length !== count)
      throw badRequest(`Input "${inp.name}" has shape [${inp.shape.join(', ')}], which holds ${count} element(s), but "data" has ${values.length}.`);
    if (inp.datatype === 'BYTES' && spec.datatype !== 'BYTES') {
      out[inp.name] =
        served.text?.input === inp.name ? textTensor(served.text, values, inp.shape, inp.name) : await imageTensor(values, inp.shape, served, inp.name, limits);
      continue;
    }
    if (inp.datatype !== spec.datatype)
      throw badRequest(
        `Input "${inp.name}" is ${inp.datatype}, but model "${served.name}" takes ${spec.datatype}${served.image?.input === inp.name ? ' (or BYTES: base64 images)' : served.text?.input === inp.name ? ' (or BYTES: texts, tokenized by the server)' : ''}; send ${spec.datatype} data.`,
      );
    if (spec.datatype === 'BYTES') throw badRequest(`Input "${inp.name}" is a BYTES (string) tensor, which graft serve cannot feed to onnxruntime.`);
    out[inp.name] = { datatype: spec.datatype, shape: inp.shape, data: typed(values, spec.datatype, inp.name) };
  }
  const missing = specs.filter((s) => !out[s.name]);
  if (missing.length)
    throw badRequest(`Model "${served.name}" also needs input(s) ${missing.map((s) => `"${s.name}"`).join(', ')}; send every input the model lists.`);
  return out;
}

/** The requested output names, checked against the model (all outputs when the request names none). */
export function requestedOutputs(req: InferRequest, served: ServedModel): string[] {
  const names = served.runner.info.outputs.map((o) => o.name);
  if (!req.outputs?.length) return names;
  for (const o of req.outputs) {
    if (!names.includes(o.name))
      throw badRequest(`Model "${served.name}" has no output "${o.name}"; its outputs are ${names.map((n) => `"${n}"`).join(', ')}.`);
    if (o.parameters?.binary_data) throw badRequest(`Output "${o.name}": binary_data is not supported by graft serve; leave it out to get JSON data.`);
  }
  return [...new Set(req.outputs.map((o) => o.name))];
}

/** One output tensor of an infer response. */
export interface ResponseOutput {
  name: string;
  datatype: OipDatatype;
  shape: number[];
  data: (number | boolean | string | null)[];
}

/** A runner output as response JSON (non-finite floats become null, as JSON has no NaN). */
export function responseOutput(name: string, t: HostTensor): ResponseOutput {
  const data: (number | boolean | null)[] = new Array(t.data.length);
  if (t.datatype === 'BOOL') for (let i = 0; i < t.data.length; i++) data[i] = t.data[i] !== 0;
  else if (t.data instanceof BigInt64Array) for (let i = 0; i < t.data.length; i++) data[i] = Number(t.data[i]);
  else
    for (let i = 0; i < t.data.length; i++) {
      const v = t.data[i] as number;
      data[i] = Number.isFinite(v) ? v : null;
    }
  return { name, datatype: t.datatype, shape: t.shape, data };
}

/**
 * Triton's classification extension for one output: the top `k` classes of each row as BYTES strings
 * "score:index:label" (":label" only for a model with labels, on an output with one score per label). For the classifier's own output the scores are
 * the calibrated probabilities `graft predict` reports (softmax of logits / temperature); otherwise the values.
 */
export function classificationOutput(name: string, t: HostTensor, k: number, served: ServedModel): ResponseOutput {
  if (t.datatype === 'BOOL' || t.data instanceof BigInt64Array || t.shape.length < 1 || t.shape.length > 2)
    throw badRequest(
      `Output "${name}" of shape [${t.shape.join(', ')}] (${t.datatype}) cannot be classified; ask for classification on a [batch, classes] score output.`,
    );
  const classes = t.shape.at(-1)!;
  const rows = t.shape.length === 2 ? t.shape[0]! : 1;
  const scores = Float32Array.from(t.data as ArrayLike<number>);
  const clf = served.image ?? served.text;
  if (clf && name === clf.output) calibrateRows(clf, scores, classes);
  const kk = Math.min(k, classes);
  // labels name the classes of any output with one score per class (logits, probabilities)
  const labels = clf?.hasLabels && clf.labels.length === classes ? clf.labels : undefined;
  const data: string[] = [];
  for (let r = 0; r < rows; r++) {
    const row = scores.subarray(r * classes, (r + 1) * classes);
    const order = Array.from({ length: classes }, (_, i) => i).sort((a, b) => row[b]! - row[a]! || a - b);
    for (const i of order.slice(0, kk)) data.push(`${row[i]}:${i}${labels ? `:${labels[i]}` : ''}`);
  }
  return { name, datatype: 'BYTES', shape: t.shape.length === 2 ? [rows, kk] : [kk], data };
}
