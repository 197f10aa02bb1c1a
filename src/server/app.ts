/**
 * The HTTP layer of `graft serve`: a fastify app speaking the Open Inference Protocol (KServe v2) REST API over a
 * {@link ModelRepository} — health, server and model metadata, readiness, `infer` with JSON tensors (and base64
 * images on a classifier's image input), Triton's classification extension — plus graft's `classify` endpoint
 * (multipart or raw image body → `[{label, p, top}]`, the rows of `graft predict`). Limits live here: body size,
 * header size, request and header timeouts (slowloris), an optional bearer token. Every refused request gets
 * `{"error": "..."}` with a 4xx; nothing a client sends can stop the process.
 */
import { timingSafeEqual } from 'node:crypto';
import multipart from '@fastify/multipart';
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import { batchDims, decodeBatch, ImageDecodeError, imageSize } from '../data/image.js';
import { FeedError } from '../runtime/feeds.js';
import { calibrateRows, labelRows } from '../train/classify.js';
import { graftVersion } from '../util/version.js';
import { ExecutorUnavailableError } from './batcher.js';
import { QueueFullError, type ServeMetrics } from './contract.js';
import { badRequest, HttpError } from './errors.js';
import { classificationOutput, decodeMessage, parseInferRequest, requestedOutputs, requestTensors, responseOutput } from './oip.js';
import type { ModelRepository, ServedModel } from './repository.js';
import { classifyTextRequest, type Run } from './text.js';

/** Limits and options of the HTTP layer. */
export interface AppOptions {
  repository: ModelRepository;
  /** Bearer token every request but the health checks must carry (`Authorization: Bearer <token>`). */
  token?: string;
  /** Largest request body in bytes (default 64 MiB). */
  maxBodyBytes?: number;
  /** Largest request head (request line and headers) in bytes (default 16 KiB); larger → 431. */
  maxHeaderBytes?: number;
  /** Time a client has to send a whole request, in ms (default 30 000); a slower one is cut off (slowloris). */
  requestTimeoutMs?: number;
  /** Time a client has to send the request head, in ms (default: min(10 000, requestTimeoutMs)). */
  headersTimeoutMs?: number;
  /** Idle keep-alive connections close after this many ms (default 5 000). */
  keepAliveTimeoutMs?: number;
  /** Refuse images with more pixels than this (default: graft's decode limit, GRAFT_MAX_IMAGE_PIXELS or 100 MP). */
  maxPixels?: number;
  /** Called with a server fault (an answer 500), for the log. */
  onError?: (message: string) => void;
  /** Prometheus metrics: served at GET /metrics, fed one `request` per infer or classify call. */
  metrics?: ServeMetrics;
}

const MiB = 1024 * 1024;

/** The server metadata's name and the OIP extensions graft serve implements. */
export const SERVER_NAME = 'graft';
export const EXTENSIONS = ['classification', 'graft_classify'];

interface ModelParams {
  model: string;
  version?: string;
}

/** Builds the app (not listening yet: call `listen`, or `inject` in tests). */
export async function buildApp(opts: AppOptions): Promise<FastifyInstance> {
  const repo = opts.repository;
  const bodyLimit = opts.maxBodyBytes ?? 64 * MiB;
  const requestTimeout = opts.requestTimeoutMs ?? 30_000;
  const app = Fastify({
    logger: false,
    bodyLimit,
    requestTimeout,
    // no socket inactivity timeout: a long inference sends nothing for a while; the head, request and keep-alive
    // timeouts below bound what a client can hold
    connectionTimeout: 0,
    keepAliveTimeout: opts.keepAliveTimeoutMs ?? 5000,
    forceCloseConnections: 'idle',
    return503OnClosing: true,
    http: {
      maxHeaderSize: opts.maxHeaderBytes ?? 16 * 1024,
      headersTimeout: opts.headersTimeoutMs ?? Math.min(10_000, requestTimeout),
      // how often node checks the two timeouts above (its default, 30 s, would let a trickle hold a socket that long)
      connectionsCheckingInterval: Math.max(50, Math.min(1000, Math.floor(requestTimeout / 4))),
    },
  });
  let closing = false;
  app.addHook('onClose', async () => {
    closing = true;
  });
  await app.register(multipart, {
    limits: { fileSize: bodyLimit, files: 256, fields: 16, fieldSize: 1024, parts: 272, headerPairs: 64 },
    throwFileSizeLimit: true,
  });
  // any other body arrives as bytes: an image for /classify, whatever its Content-Type says (the decoder reads the
  // format from the bytes), and JSON for /infer even when sent without "Content-Type: application/json" (curl -d)
  app.removeContentTypeParser('text/plain');
  app.addContentTypeParser('*', { parseAs: 'buffer', bodyLimit }, (_req, body, done) => done(null, body));

  if (opts.token) {
    const want = Buffer.from(`Bearer ${opts.token}`);
    app.addHook('onRequest', async (req, reply) => {
      // by the matched route, not the raw URL, so no spelling of a path reaches a model without the token
      if (req.routeOptions.url?.startsWith('/v2/health/')) return;
      const got = Buffer.from(req.headers.authorization ?? '');
      if (got.length !== want.length || !timingSafeEqual(got, want)) {
        reply.header('WWW-Authenticate', 'Bearer');
        throw new HttpError(
          401,
          'Missing or wrong bearer token: send the header "Authorization: Bearer <token>" with the token graft serve was started with (--token or GRAFT_SERVE_TOKEN).',
        );
      }
    });
  }

  app.setErrorHandler(async (err: Error & { statusCode?: number; code?: string }, req, reply) => {
    if (err instanceof QueueFullError) return send(reply, 503, err.message, { 'Retry-After': String(err.retryAfterS) });
    if (err instanceof ExecutorUnavailableError) return send(reply, 503, err.message, { 'Retry-After': '1' });
    if (err instanceof HttpError) return send(reply, err.status, err.message, err.headers);
    if (err instanceof FeedError || err instanceof ImageDecodeError) return send(reply, 400, err.message);
    const status = err.statusCode;
    if (status && status >= 400 && status < 500) return send(reply, status, clientMessage(err, bodyLimit));
    opts.onError?.(`${req.method} ${req.url.split('?')[0]} failed: ${process.env.GRAFT_DEBUG === '1' ? (err.stack ?? err.message) : err.message}`);
    return send(reply, 500, `graft serve failed on ${req.method} ${req.url.split('?')[0]}: ${err.message}`);
  });
  app.setNotFoundHandler(async (req, reply) =>
    send(
      reply,
      404,
      `No such endpoint: ${req.method} ${req.url.split('?')[0]}. graft serve answers GET /v2, /v2/health/{live,ready}, /v2/models/{name}[/versions/{v}][/ready] and POST .../infer, .../classify; see docs/cli/serve.md.`,
    ),
  );

  if (opts.metrics) {
    const metrics = opts.metrics;
    app.addHook('onResponse', async (req, reply) => {
      const m = (req as FastifyRequest & { served?: ServedModel }).served;
      const url = req.routeOptions.url ?? '';
      if (m && (url.endsWith('/infer') || url.endsWith('/classify'))) metrics.request(m.name, m.version, reply.statusCode < 400, reply.elapsedTime / 1000);
    });
    app.get('/metrics', async (_req, reply) => {
      const r = await metrics.render();
      return reply.type(r.contentType).send(r.body);
    });
  }

  app.get('/v2/health/live', async () => ({ live: true }));
  app.get('/v2/health/ready', async (_req, reply) => {
    const ready = !closing && repo.names().length > 0;
    return reply.code(ready ? 200 : 503).send({ ready });
  });
  app.get('/v2', async () => ({ name: SERVER_NAME, version: graftVersion(), extensions: EXTENSIONS }));
  app.get('/v2/models', async () => ({ models: repo.names().map((name) => ({ name, versions: repo.versions(name) })) }));

  const served = (req: FastifyRequest<{ Params: ModelParams }>): ServedModel => {
    const m = repo.get(req.params.model, req.params.version);
    (req as FastifyRequest & { served?: ServedModel }).served = m;
    return m;
  };
  for (const base of ['/v2/models/:model', '/v2/models/:model/versions/:version']) {
    app.get<{ Params: ModelParams }>(base, async (req) => metadata(served(req), repo.versions(req.params.model)));
    app.get<{ Params: ModelParams }>(`${base}/ready`, async (req) => {
      const m = served(req);
      return { name: m.name, version: m.version, ready: true };
    });
    const runOn =
      (req: FastifyRequest<{ Params: ModelParams }>, m: ServedModel): Run =>
      (inputs, outputs) =>
        repo.infer(m, inputs, outputs, req.params.version !== undefined);
    app.post<{ Params: ModelParams }>(`${base}/infer`, async (req) => {
      const m = served(req);
      return infer(m, runOn(req, m), req.body, opts.maxPixels);
    });
    app.post<{ Params: ModelParams; Querystring: Record<string, string> }>(`${base}/classify`, async (req) => {
      const m = served(req);
      return classify(m, runOn(req, m), req, opts.maxPixels);
    });
  }
  return app;
}

function send(reply: FastifyReply, status: number, error: string, headers: Record<string, string> = {}): FastifyReply {
  return reply.code(status).headers(headers).type('application/json').send({ error });
}

/** fastify's own 4xx errors, reworded to say how to fix the request. */
function clientMessage(err: Error & { code?: string }, bodyLimit: number): string {
  switch (err.code) {
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
    case 'FST_REQ_FILE_TOO_LARGE':
      return `The request body is over the limit of ${bodyLimit} bytes; send fewer or smaller images (or texts) per request, or start graft serve with a larger --max-body.`;
    case 'FST_ERR_CTP_EMPTY_JSON_BODY':
      return 'The request body is empty; /infer takes a JSON object with "inputs".';
    default:
      return err.message.startsWith('Body is not valid JSON') || err instanceof SyntaxError
        ? `The request body is not valid JSON: ${err.message}`
        : err.message;
  }
}

/** GET /v2/models/{m}: the OIP model metadata, plus what graft knows about classifying with it. */
function metadata(m: ServedModel, versions: string[]) {
  return {
    name: m.name,
    versions,
    platform: 'onnxruntime_onnx',
    inputs: m.runner.info.inputs,
    outputs: m.runner.info.outputs,
    parameters: m.text
      ? {
          text_input: m.text.input,
          tokenizer: m.text.tokenizer.spec.kind,
          classifier_output: m.text.output,
          labels: m.text.hasLabels ? m.text.labels : undefined,
          temperature: m.text.temperature,
        }
      : m.image
        ? {
            image_input: m.image.input,
            classifier_output: m.image.output,
            labels: m.image.hasLabels ? m.image.labels : undefined,
            temperature: m.image.temperature,
          }
        : { images: m.imageError },
  };
}

async function infer(m: ServedModel, run: Run, body: unknown, maxPixels?: number) {
  const req = parseInferRequest(Buffer.isBuffer(body) ? jsonOf(body) : body);
  const outputs = requestedOutputs(req, m);
  const inputs = await requestTensors(req, m, { maxPixels });
  const result = await run(inputs, outputs);
  const asked = new Map((req.outputs ?? []).map((o) => [o.name, o.parameters?.classification]));
  return {
    model_name: m.name,
    model_version: m.version,
    ...(req.id !== undefined ? { id: req.id } : {}),
    outputs: outputs.map((name) => {
      const t = result[name];
      if (!t) throw new Error(`the runner returned no output "${name}"`);
      const k = asked.get(name);
      return k ? classificationOutput(name, t, k, m) : responseOutput(name, t);
    }),
  };
}

/** A JSON body that came without a JSON content type. */
function jsonOf(body: Buffer): unknown {
  try {
    return JSON.parse(body.toString('utf8'));
  } catch (e) {
    throw badRequest(`The request body is not valid JSON (${(e as Error).message}); /infer takes a JSON object with "inputs".`);
  }
}

/** A text model's classify body sent without a JSON content type. */
function textJsonOf(body: Buffer): unknown {
  try {
    return JSON.parse(body.toString('utf8'));
  } catch (e) {
    throw badRequest(`The request body is not valid JSON (${(e as Error).message}); a text model's /classify takes {"text": "..."} or {"texts": ["..."]}.`);
  }
}

/** Parses `?name=` as a number in [lo, hi] (integer when `int`); undefined when absent. */
function queryNumber(q: Record<string, string>, name: string, lo: number, hi: number, int: boolean): number | undefined {
  const v = q[name];
  if (v === undefined) return undefined;
  const n = Number(v);
  if (v.trim() === '' || !Number.isFinite(n) || n < lo || n > hi || (int && !Number.isInteger(n)))
    throw badRequest(`?${name}=${String(v).slice(0, 20)} is not ${int ? 'a whole number' : 'a number'} in [${lo}, ${hi}].`);
  return n;
}

/** POST .../classify: images (multipart files or one raw body) → `[{file, label, p, top}]`, as `graft predict` labels them. */
async function classify(m: ServedModel, run: Run, req: FastifyRequest<{ Querystring: Record<string, string> }>, maxPixels?: number) {
  const threshold = queryNumber(req.query, 'threshold', 0, 1, false);
  const topK = queryNumber(req.query, 'top', 1, 1000, true) ?? 5;
  if (m.text) {
    if (req.isMultipart()) throw badRequest(`Model "${m.name}" is a text model: POST JSON {"text": "..."} or {"texts": ["...", "..."]}, not files.`);
    const body = Buffer.isBuffer(req.body) ? textJsonOf(req.body) : req.body;
    return classifyTextRequest(m, m.text, run, body, { topK, threshold });
  }
  const image = m.image;
  if (!image) throw badRequest(`Model "${m.name}" cannot classify images: ${m.imageError ?? 'it has no preprocessing'}`);
  const names: string[] = [];
  const bufs: Buffer[] = [];
  if (req.isMultipart()) {
    try {
      for await (const part of req.parts()) {
        if (part.type !== 'file') continue;
        names.push(part.filename || part.fieldname);
        bufs.push(await part.toBuffer());
      }
    } catch (e) {
      const status = (e as { statusCode?: number }).statusCode;
      if (status && status >= 400 && status < 500) throw e; // a file over --max-body: 413
      throw badRequest(
        `The multipart body is malformed (${(e as Error).message}); send multipart/form-data with image files, e.g. curl -F "image=@photo.jpg".`,
      );
    }
  } else if (Buffer.isBuffer(req.body)) {
    names.push('body');
    bufs.push(req.body);
  } else throw badRequest('POST /classify takes an image file as the body, or multipart/form-data with image files; this body is JSON.');
  if (!bufs.length) throw badRequest('The multipart request holds no file; attach images as file parts (curl -F "image=@photo.jpg").');
  const b = await decodeBatch(bufs, image.preprocess, { onError: 'skip', maxPixels });
  const failed = new Map(b.failed.map((f) => [f.index, decodeMessage(f.error, (i) => names[i]!)]));
  if (failed.size === bufs.length)
    throw badRequest(bufs.length === 1 ? failed.get(0)! : `None of the ${bufs.length} images could be decoded; e.g. ${failed.get(0)}`);
  // in runs of at most the runner's batch (a fixed-batch model takes one image per run)
  const per = imageSize(image.preprocess);
  const step = m.runner.info.maxBatchSize;
  const probabilities = new Float32Array(bufs.length * image.labels.length);
  for (let r0 = 0; r0 < bufs.length; r0 += step) {
    const n = Math.min(step, bufs.length - r0);
    const input = { datatype: 'FP32' as const, shape: batchDims(image.preprocess, n), data: b.data.subarray(r0 * per, (r0 + n) * per) };
    const t = (await run({ [image.input]: input }, [image.output]))[image.output]!;
    if (t.shape.length !== 2 || t.shape[0] !== n || t.shape[1] !== image.labels.length)
      throw new Error(
        `model "${m.name}" output "${image.output}" has shape [${t.shape.join(', ')}] for ${n} image(s), but its labels list ${image.labels.length} classes; fix "labels" in its model.json`,
      );
    probabilities.set(t.data as Float32Array, r0 * image.labels.length);
  }
  const classes = image.labels.length;
  calibrateRows(image, probabilities, classes);
  return labelRows({ probabilities, classes, failed }, image.labels, names, { topK, threshold });
}
