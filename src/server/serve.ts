/**
 * Starting and stopping a `graft serve` server: load the models, build the app, listen (127.0.0.1 by default;
 * port 0 picks a free one), and a graceful {@link RunningServer.close} that stops taking connections, lets
 * in-flight requests finish, then drains every runner. The CLI (cli/commands/serve.ts) wires it to signals.
 */
import type { AddressInfo } from 'node:net';
import type { FastifyInstance } from 'fastify';
import { type AppOptions, buildApp } from './app.js';
import type { OpenRunner, RunnerOptions, ServeMetrics } from './contract.js';
import { createServeMetrics } from './metrics.js';
import { ModelRepository, type ModelSource } from './repository.js';
import { openBatchedRunner } from './worker-runner.js';

/** Options of {@link startServer}. */
export interface ServerOptions extends Omit<AppOptions, 'repository' | 'metrics'> {
  /** Prometheus metrics for GET /metrics (default: a fresh {@link createServeMetrics}; false: no /metrics). */
  metrics?: ServeMetrics | false;
  sources: readonly ModelSource[];
  /** Interface to bind (default 127.0.0.1). */
  host?: string;
  /** Port (default 8000; 0: a free one). */
  port?: number;
  /** Opens one runner per model version (default: the batched runner, dynamic batching on a worker thread, so inference never blocks the event loop; `openDirectRunner` runs one session.run per request on this thread). */
  openRunner?: OpenRunner;
  /** Options for every runner (batch cap, queue, threads). */
  runner?: Omit<RunnerOptions, 'model' | 'version' | 'metrics'>;
  /** Repository folders are scanned this often for new versions, in ms (default 1000; 0: never). */
  pollMs?: number;
  /** Load, reload and unload lines. */
  onNote?: (message: string) => void;
}

/** A listening server. */
export interface RunningServer {
  /** `http://host:port`, with the port actually bound. */
  url: string;
  app: FastifyInstance;
  repository: ModelRepository;
  /** Stops accepting, finishes in-flight requests, drains the runners; idempotent. */
  close(): Promise<void>;
}

/** Whether `host` is a loopback address (binding anything else exposes the models to the network). */
export function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '::1' || /^127\./.test(host);
}

/** The warning for a server reachable from the network without a token, or undefined when there is nothing to warn about. */
export function exposureWarning(host: string, token: string | undefined): string | undefined {
  if (isLoopback(host) || token) return undefined;
  return `graft serve is bound to ${host}, reachable from the network, with no --token: anyone who can reach it can run the models. Set GRAFT_SERVE_TOKEN (or --token), or bind 127.0.0.1.`;
}

/** Loads the models and starts listening. @throws when a model fails to load or the port is taken. */
export async function startServer(opts: ServerOptions): Promise<RunningServer> {
  const metrics = opts.metrics === false ? undefined : (opts.metrics ?? createServeMetrics());
  const repository = new ModelRepository(opts.sources, {
    openRunner: opts.openRunner ?? openBatchedRunner,
    runner: { ...opts.runner, metrics },
    pollMs: opts.pollMs,
    onNote: opts.onNote,
  });
  await repository.load();
  let app: FastifyInstance;
  try {
    app = await buildApp({ onError: opts.onNote, ...opts, repository, metrics });
    const host = opts.host ?? '127.0.0.1';
    await app.listen({ host, port: opts.port ?? 8000 });
    const addr = app.server.address() as AddressInfo;
    const shown = addr.family === 'IPv6' ? `[${addr.address}]` : addr.address;
    let closed: Promise<void> | undefined;
    return {
      url: `http://${shown}:${addr.port}`,
      app,
      repository,
      close: () =>
        (closed ??= (async () => {
          await app.close();
          await repository.close();
        })()),
    };
  } catch (e) {
    await repository.close();
    if ((e as NodeJS.ErrnoException).code === 'EADDRINUSE')
      throw new Error(`Port ${opts.port ?? 8000} on ${opts.host ?? '127.0.0.1'} is in use; pass another --port (0 picks a free one) or stop the other server.`);
    throw e;
  }
}
