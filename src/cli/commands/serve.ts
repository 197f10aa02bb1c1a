/**
 * `graft serve <model.onnx | run folder | repository folder | registry name>…`: an inference server speaking
 * the Open Inference Protocol (KServe v2) REST API, plus `/classify` for images. The server itself is
 * src/server/; this file maps flags to its options, prints the URL, and stops gracefully on SIGINT/SIGTERM.
 */
import { type Command, InvalidArgumentError, Option } from 'commander';
import { parseBytes } from '../../util/bytes.js';
import { toJsonLine } from '../../util/jsonl.js';
import { CliError, globals, positiveInt } from '../context.js';
import { atLeastOne } from './predict.js';

interface ServeFlags {
  name?: string;
  host: string;
  port: number;
  token?: string;
  maxBody: number;
  maxPixels?: number;
  requestTimeout: number;
  maxBatchSize: number;
  maxQueue: number;
  poll: number;
  runner: 'direct' | 'batched';
  workers: number;
  maxQueueDelay: number;
}

function bytes(v: string): number {
  const n = parseBytes(v);
  if (n === undefined || n < 1) throw new InvalidArgumentError('--max-body must be a size such as 64MB, 500KB or 1048576 (bytes).');
  return n;
}

function seconds(name: string): (v: string) => number {
  return (v) => {
    const n = Number(v);
    if (v.trim() === '' || !Number.isFinite(n) || n <= 0) throw new InvalidArgumentError(`${name} must be a number of seconds above 0 (e.g. 30 or 0.5).`);
    return n;
  };
}

/** Registers `graft serve`. */
export function register(program: Command): void {
  program
    .command('serve')
    .description('serve models over HTTP: the Open Inference Protocol (KServe v2) REST API, Triton classification, and /classify for images')
    .argument('<models...>', 'model.onnx files, run folders (holding model.onnx), repository folders (<name>/<version>/model.onnx, watched) or registry names')
    .option('--name <name>', 'the URL name of the one model given (default: its folder name, or the file name)')
    .option('--host <host>', 'interface to bind; anything but loopback exposes the models to the network (use --token)', '127.0.0.1')
    .addOption(new Option('--port <n>', 'port to listen on (0: a free one, printed)').default(8000).argParser(positiveInt('--port')))
    .addOption(new Option('--token <token>', 'require "Authorization: Bearer <token>" on every request but health checks').env('GRAFT_SERVE_TOKEN'))
    .addOption(new Option('--max-body <size>', 'largest request body').default(64 * 1024 * 1024, '64MB').argParser(bytes))
    .addOption(
      new Option('--max-pixels <n>', 'refuse images with more pixels (default: GRAFT_MAX_IMAGE_PIXELS or 100 megapixels)').argParser(
        atLeastOne('--max-pixels'),
      ),
    )
    .addOption(
      new Option('--request-timeout <s>', 'seconds a client has to send a whole request (slow senders are cut off)')
        .default(30)
        .argParser(seconds('--request-timeout')),
    )
    .addOption(
      new Option('--max-batch-size <n>', 'rows per onnxruntime run for a model with a dynamic batch').default(32).argParser(atLeastOne('--max-batch-size')),
    )
    .addOption(
      new Option('--max-queue <n>', 'requests in flight per model version; more get 503 with Retry-After').default(256).argParser(atLeastOne('--max-queue')),
    )
    .addOption(
      new Option('--runner <kind>', 'direct: one onnxruntime run per request; batched: dynamic batching on worker threads')
        .choices(['direct', 'batched'])
        .default('batched'),
    )
    .addOption(
      new Option('--workers <n>', 'batched runner: worker threads per model version, each with one session').default(1).argParser(atLeastOne('--workers')),
    )
    .addOption(
      new Option('--max-queue-delay <ms>', 'batched runner: how long a batch waits to fill, in ms').default(2).argParser(positiveInt('--max-queue-delay')),
    )
    .addOption(new Option('--poll <s>', 'how often repository folders are scanned for new versions, in seconds').default(1).argParser(seconds('--poll')))
    .action(async (refs: string[], flags: ServeFlags, cmd: Command) => serve(refs, flags, cmd));
}

async function serve(refs: string[], flags: ServeFlags, cmd: Command): Promise<void> {
  const g = globals(cmd);
  const say = (event: string, message: string, extra: Record<string, unknown> = {}) => {
    if (g.json) process.stderr.write(`${toJsonLine({ event, message, ...extra })}\n`);
    else if (!g.quiet || event === 'warning') process.stderr.write(`${event === 'warning' ? 'warning: ' : ''}${message}\n`);
  };
  const [{ resolveSources }, { startServer, exposureWarning }, { resolveModelRef }, { createServeMetrics }, { openBatchedRunner }, { openDirectRunner }] =
    await Promise.all([
      import('../../server/repository.js'),
      import('../../server/serve.js'),
      import('../../models/resolve.js'),
      import('../../server/metrics.js'),
      import('../../server/worker-runner.js'),
      import('../../server/direct-runner.js'),
    ]);
  let server: Awaited<ReturnType<typeof startServer>>;
  try {
    const sources = await resolveSources(refs, { name: flags.name, resolve: (ref) => resolveModelRef(ref, { onNote: (m) => say('note', m) }) });
    server = await startServer({
      sources,
      host: flags.host,
      port: flags.port,
      token: flags.token || undefined,
      maxBodyBytes: flags.maxBody,
      maxPixels: flags.maxPixels,
      requestTimeoutMs: flags.requestTimeout * 1000,
      pollMs: flags.poll * 1000,
      runner: { maxBatchSize: flags.maxBatchSize, maxQueue: flags.maxQueue, maxQueueDelayMs: flags.maxQueueDelay, threads: g.threads },
      openRunner: flags.runner === 'batched' ? (file, o) => openBatchedRunner(file, { ...o, workers: flags.workers }) : openDirectRunner,
      metrics: createServeMetrics({ defaultMetrics: true }),
      onNote: (m) => say('note', m),
      onError: (m) => say('warning', m),
    });
  } catch (e) {
    throw new CliError((e as Error).message);
  }
  const exposed = exposureWarning(flags.host, flags.token);
  if (exposed) say('warning', exposed);
  const models = server.repository.all().map((m) => ({ name: m.name, version: m.version, file: m.file, images: !!m.image }));
  if (g.json) process.stdout.write(`${toJsonLine({ event: 'listening', url: server.url, models })}\n`);
  else {
    process.stdout.write(`graft serve: listening on ${server.url}\n`);
    for (const m of models) say('note', `  ${m.name} version ${m.version}: ${m.file}${m.images ? '' : ' (tensors only: no preprocessing for images)'}`);
  }
  await new Promise<void>((resolve) => {
    const stop = (signal: string) => {
      process.off('SIGINT', onInt);
      process.off('SIGTERM', onTerm);
      say('note', `${signal}: finishing in-flight requests, then stopping`);
      server.close().then(resolve, (e) => {
        say('warning', `stopping: ${(e as Error).message}`);
        resolve();
      });
    };
    const onInt = () => stop('SIGINT');
    const onTerm = () => stop('SIGTERM');
    process.on('SIGINT', onInt);
    process.on('SIGTERM', onTerm);
  });
  say('note', 'graft serve stopped');
}
