/**
 * The server of `graft ui`: fastify (the HTTP stack of `graft serve`) on 127.0.0.1, a random session token on
 * every page, asset and API request, the page and its bundled script, and the API routes (./routes-*.ts) that
 * call the run layer. It holds no training, config or metrics logic: runs go through run/queue.ts (startRun),
 * configs through run/config.ts's schema, looks at data and results through run/data-summary.ts and run/results.ts.
 */
import path from 'node:path';
import fastify, { type FastifyInstance } from 'fastify';
import { RunQueue } from '../run/queue.js';
import { appScript, appStyle, indexHtml } from './assets.js';
import { HttpError, newToken, tokenMatches } from './guard.js';
import { registerDataRoutes } from './routes-data.js';
import { registerRunRoutes } from './routes-runs.js';

/** Options of {@link createUiApp}. */
export interface UiOptions {
  /** Folders whose images and data a page may read; the first is the data folder the page opens with. */
  folders: string[];
  /** Where runs are written (and listed from). */
  runsDir: string;
  /** The session token (default: a new random one). */
  token?: string;
  /** Config file under every run the page starts (graft ui --config graft.yaml); the form's choices go over it. */
  configFile?: string;
  /** Largest upload of the try-it panel, in bytes (default 20 MiB). */
  maxUploadBytes?: number;
  /** Largest image of the try-it panel, in pixels (default 40 megapixels). */
  maxUploadPixels?: number;
  /** The run queue (default: a new one). */
  queue?: RunQueue;
}

/** What the routes share. */
export interface UiContext {
  folders: string[];
  runsDir: string;
  configFile?: string;
  maxUploadBytes: number;
  maxUploadPixels: number;
  queue: RunQueue;
}

/** A ready server (not listening yet): `app.listen({ host: '127.0.0.1', port })`. */
export interface UiApp {
  app: FastifyInstance;
  token: string;
  queue: RunQueue;
}

/** Builds the `graft ui` server. */
export async function createUiApp(opts: UiOptions): Promise<UiApp> {
  if (!opts.folders.length) throw new Error('graft ui needs at least one folder to serve (graft ui <folder>).');
  const token = opts.token ?? newToken();
  const ctx: UiContext = {
    folders: opts.folders.map((f) => path.resolve(f)),
    runsDir: path.resolve(opts.runsDir),
    configFile: opts.configFile,
    maxUploadBytes: opts.maxUploadBytes ?? 20 * 1024 * 1024,
    maxUploadPixels: opts.maxUploadPixels ?? 40_000_000,
    queue: opts.queue ?? new RunQueue(),
  };
  const app = fastify({ logger: false, bodyLimit: 1024 * 1024 });
  await app.register(import('@fastify/multipart'), { limits: { fileSize: ctx.maxUploadBytes, files: 1, fields: 4 } });

  app.addHook('onRequest', async (req, reply) => {
    const given = (req.query as Record<string, unknown>)?.token ?? req.headers['x-graft-token'];
    if (!tokenMatches(token, given))
      return reply
        .code(401)
        .type('text/plain')
        .send(
          'graft ui: missing or wrong session token. Open the URL that graft ui printed (it ends in ?token=…); the token changes each time graft ui starts.',
        );
  });
  app.addHook('onSend', async (_req, reply) => {
    reply.header('x-content-type-options', 'nosniff');
    reply.header('referrer-policy', 'no-referrer');
    reply.header(
      'content-security-policy',
      "default-src 'self'; img-src 'self' data: blob:; style-src 'self' 'unsafe-inline'; script-src 'self' 'unsafe-eval'; connect-src 'self'",
    );
  });
  app.setErrorHandler((e: Error & { statusCode?: number }, _req, reply) => {
    const status = e instanceof HttpError ? e.status : (e.statusCode ?? 400);
    const message = e.message;
    reply.code(status >= 400 && status < 600 ? status : 400).send({ error: message });
  });

  app.get('/', async (_req, reply) => reply.type('text/html; charset=utf-8').send(indexHtml(token)));
  app.get('/assets/app.js', async (_req, reply) => reply.type('text/javascript; charset=utf-8').send(await appScript()));
  app.get('/assets/app.css', async (_req, reply) => reply.type('text/css; charset=utf-8').send(appStyle()));
  registerDataRoutes(app, ctx);
  registerRunRoutes(app, ctx);
  return { app, token, queue: ctx.queue };
}
