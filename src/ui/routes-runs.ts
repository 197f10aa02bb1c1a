/**
 * `graft ui`'s run routes: start runs (they queue), stream every run's events (server-sent events), cancel and
 * resume, look at a finished run, try an image on its model, download its files, and compare runs. Each route
 * calls the run layer: the form becomes a config through run/config.ts's `loadConfig` (the form's fields are
 * config keys, like the CLI's flags), runs go through run/queue.ts, results come from run/results.ts.
 */
import fs from 'node:fs';
import type { ServerResponse } from 'node:http';
import path from 'node:path';
import type { FastifyInstance } from 'fastify';
import { ARCHS, loadConfig } from '../run/config.js';
import { resumeConfig } from '../run/runs.js';
import { labelRows, loadClassifier } from '../train/classify.js';
import type { UiContext } from './app.js';
import { HttpError, insideFolders, runFolderOf } from './guard.js';
import { registerLookRoutes } from './routes-look.js';
import { readImageUpload } from './upload.js';

/** What the page's train form sends. */
export interface RunForm {
  data: string;
  /** A built-in architecture (small-cnn, …) or a registry model name. */
  backbone: string;
  mode?: string;
  epochs?: number;
  /** The auto recipe's time budget in seconds (train.budget). */
  budget?: number;
  batchSize?: number;
  /** Square input side (built-in architectures; a registry model keeps its own). */
  imageSize?: number;
  valSplit?: number;
  name?: string;
}

/** The config keys the form sets, as `loadConfig` takes flags (the form's field names the flag). */
function formFlags(f: RunForm, ctx: UiContext): Record<string, { value: unknown; flag: string }> {
  if (typeof f.data !== 'string' || typeof f.backbone !== 'string') throw new HttpError(400, 'A run needs "data" (an image folder) and "backbone" (a model).');
  const flags: Record<string, { value: unknown; flag: string }> = {};
  const set = (key: string, value: unknown, field: string) => {
    if (value !== undefined && value !== '' && value !== null) flags[key] = { value, flag: `the form's ${field}` };
  };
  set('data.train', insideFolders(ctx.folders, f.data), 'data folder');
  const arch = (ARCHS as readonly string[]).includes(f.backbone);
  flags[arch ? 'model.backbone' : 'model.arch'] = { value: undefined, flag: "the form's backbone" };
  set(arch ? 'model.arch' : 'model.backbone', f.backbone, 'backbone');
  set('train.mode', f.mode, 'recipe');
  set('train.epochs', f.epochs, 'epochs');
  set('train.budget', f.budget, 'time budget');
  set('train.batchSize', f.batchSize, 'batch size');
  if (f.imageSize !== undefined) set('model.preprocess.size', [f.imageSize, f.imageSize], 'image size');
  set('data.valSplit', f.valSplit, 'validation split');
  set('run.dir', ctx.runsDir, 'runs folder');
  set('run.name', f.name || `run-${new Date().toISOString().replace(/[-:]/g, '').replace(/\..*/, '').replace('T', '-')}`, 'run name');
  return flags;
}

/** Registers the run routes. */
export function registerRunRoutes(app: FastifyInstance, ctx: UiContext): void {
  const { queue } = ctx;
  const folderOf = (name: string) => runFolderOf(ctx.runsDir, name);

  app.post('/api/runs', async (req, reply) => {
    const { config, source } = loadConfig({ file: ctx.configFile, flags: formFlags(req.body as RunForm, ctx) });
    if (fs.existsSync(path.join(folderOf(config.run.name!), 'config.json')))
      throw new HttpError(409, `A run named ${config.run.name} already exists in ${ctx.runsDir}; choose another name, or resume that run.`);
    const run = queue.add(config, source);
    return reply.code(202).send({ name: run.name, state: run.state });
  });

  app.post('/api/runs/:name/cancel', async (req) => {
    const { name } = req.params as { name: string };
    if (!queue.cancel(name)) throw new HttpError(409, `The run ${name} is not queued or running, so there is nothing to cancel.`);
    return { name, cancelling: true };
  });

  app.post('/api/runs/:name/resume', async (req, reply) => {
    const { name } = req.params as { name: string };
    const { config, source } = resumeConfig(folderOf(name));
    const run = queue.add(config, source);
    return reply.code(202).send({ name: run.name, state: run.state });
  });

  // every run's events and state changes, as server-sent events; the queue's runs are replayed first
  const streams = new Set<ServerResponse>();
  app.addHook('preClose', async () => {
    for (const s of streams) s.end(); // an open stream would keep app.close() waiting forever
  });
  app.get('/api/events', (req, reply) => {
    reply.hijack();
    const res = reply.raw;
    streams.add(res);
    res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-store', connection: 'keep-alive', 'x-content-type-options': 'nosniff' });
    const send = (m: unknown) => res.write(`data: ${JSON.stringify(m)}\n\n`);
    for (const r of queue.list()) {
      send({ run: r.name, state: 'queued' });
      for (const event of r.events) send({ run: r.name, event });
      send({ run: r.name, state: r.state, ...(r.error ? { error: r.error } : {}) });
    }
    const off = queue.on(send);
    const ping = setInterval(() => res.write(': ping\n\n'), 15_000);
    req.raw.on('close', () => {
      streams.delete(res);
      off();
      clearInterval(ping);
    });
  });

  app.post('/api/runs/:name/try', async (req) => {
    const { name } = req.params as { name: string };
    const model = path.join(folderOf(name), 'model.onnx');
    if (!fs.existsSync(model)) throw new HttpError(404, `The run ${name} has no model.onnx yet; try images once it has finished.`);
    const file = await req.file();
    if (!file) throw new HttpError(400, 'Send one image as multipart/form-data (field "image").');
    const buf = await readImageUpload(file, ctx);
    const { classifyFiles } = await import('../train/classify.js');
    const clf = await loadClassifier(model);
    try {
      const r = await classifyFiles(clf, [buf], { batchSize: 1 });
      const [row] = labelRows(r, clf.labels, [file.filename], { topK: 5 });
      if (row!.error) throw new HttpError(422, `${file.filename}: ${row!.error}`);
      return row;
    } finally {
      await clf.session.release();
    }
  });

  registerLookRoutes(app, ctx);
}
