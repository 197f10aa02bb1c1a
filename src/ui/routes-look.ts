/** `graft ui`'s routes that read runs: the list, one run, a finished run's results, its files, and a comparison. */
import fs from 'node:fs';
import path from 'node:path';
import type { FastifyInstance } from 'fastify';
import { adaptRunsByTarget, compareAdaptRuns } from '../run/adapt-results.js';
import { runResults } from '../run/results.js';
import { compareRuns, listRuns, readRun } from '../run/runs.js';
import { listStudies, studyView } from '../tune/charts.js';
import type { ListedRun } from './api-types.js';
import type { UiContext } from './app.js';
import { HttpError, insideFolders, runFolderOf } from './guard.js';

/**
 * The files of a run a person downloads, by kind. The web bundle (`web`) is made on request by {@link webBundleZip}.
 */
export const EXPORTS = {
  onnx: { file: 'model.onnx', type: 'application/octet-stream' },
  sidecar: { file: 'model.json', type: 'application/json' },
  report: { file: 'report.html', type: 'text/html; charset=utf-8' },
} as const;

/**
 * Registers GET /api/runs, /api/runs/:name, /api/runs/:name/results, /api/runs/:name/files/:kind, /api/studies,
 * /api/compare and /api/adapt (adaptation runs by target, or those of one target compared).
 */
export function registerLookRoutes(app: FastifyInstance, ctx: UiContext): void {
  const { queue } = ctx;
  const folderOf = (name: string) => runFolderOf(ctx.runsDir, name);

  // the queue's runs (with their live state) and the runs folder's, newest first
  app.get('/api/runs', async (): Promise<ListedRun[]> => {
    const onDisk: ListedRun[] = listRuns(ctx.runsDir).map((r) => ({
      name: r.name,
      kind: r.kind,
      state: r.state,
      metrics: r.metrics,
      epochs: r.history.length,
    }));
    const seen = new Set(onDisk.map((r) => r.name));
    const live = queue.list();
    for (const r of onDisk) {
      const q = queue.get(r.name);
      if (q && q.state !== 'finished') r.state = q.state;
    }
    const queued = live.filter((r) => !seen.has(r.name)).map((r) => ({ name: r.name, kind: 'train' as const, state: r.state, epochs: 0 }));
    return [...queued, ...onDisk];
  });

  app.get('/api/runs/:name', async (req) => {
    const { name } = req.params as { name: string };
    const info = readRun(folderOf(name));
    const q = queue.get(name);
    if (!info && !q) throw new HttpError(404, `There is no run ${name} in ${ctx.runsDir}.`);
    return { name, state: q && q.state !== 'finished' ? q.state : info?.state, config: info?.config, history: info?.history ?? [], error: q?.error };
  });

  app.get('/api/runs/:name/results', async (req) => {
    const { name } = req.params as { name: string };
    return runResults(folderOf(name));
  });

  app.get('/api/runs/:name/files/:kind', async (req, reply) => {
    const { name, kind } = req.params as { name: string; kind: string };
    if (kind === 'web') {
      const zip = await webBundleZip(folderOf(name), name);
      return reply.type('application/zip').header('content-disposition', `attachment; filename="${name}-web.zip"`).send(zip);
    }
    const exp = EXPORTS[kind as keyof typeof EXPORTS];
    if (!exp) throw new HttpError(404, `No export "${kind}"; the exports are ${[...Object.keys(EXPORTS), 'web'].join(', ')}.`);
    const file = path.join(folderOf(name), exp.file);
    if (!fs.existsSync(file)) throw new HttpError(404, `The run ${name} has no ${exp.file} yet; it is written when the run finishes.`);
    return reply.type(exp.type).header('content-disposition', `attachment; filename="${name}-${exp.file}"`).send(fs.createReadStream(file));
  });

  // tune studies under the runs folder (graft tune --config with study.dir inside it): the list, or one study
  app.get('/api/studies', async (req) => {
    const file = (req.query as { file?: string }).file;
    if (file === undefined) return listStudies(ctx.runsDir).map((f) => path.relative(ctx.runsDir, f));
    const real = insideFolders([ctx.runsDir], file);
    if (path.basename(real) !== 'study.jsonl') throw new HttpError(400, `${file} is not a study log (study.jsonl); pick a study from the list.`);
    return studyView(real);
  });

  app.get('/api/compare', async (req) => {
    const names = String((req.query as { runs?: string }).runs ?? '')
      .split(',')
      .filter(Boolean);
    if (names.length < 2) throw new HttpError(400, 'Compare needs two or more runs: /api/compare?runs=a,b.');
    return compareRuns(names.map(folderOf));
  });

  // adaptation runs (graft adapt --out inside the runs folder): the finished ones by target, or some compared
  app.get('/api/adapt', async (req) => {
    const q = (req.query as { runs?: string }).runs;
    if (q === undefined) return adaptRunsByTarget(ctx.runsDir);
    const names = q.split(',').filter(Boolean);
    if (!names.length) throw new HttpError(400, 'Name one or more adaptation runs: /api/adapt?runs=a,b (GET /api/adapt lists them by target).');
    return compareAdaptRuns(names.map(folderOf));
  });
}

/**
 * The run's model as a browser bundle (`graft export --web`: page, model, preprocessing, onnxruntime-web), zipped.
 * The bundle is written once into the run folder (`web/`) and rebuilt when model.onnx is newer.
 */
async function webBundleZip(folder: string, name: string): Promise<Buffer> {
  const model = path.join(folder, 'model.onnx');
  if (!fs.existsSync(model)) throw new HttpError(404, `The run ${name} has no model.onnx yet; it is written when the run finishes.`);
  const dir = path.join(folder, 'web');
  const stale = !fs.existsSync(path.join(dir, 'index.html')) || fs.statSync(dir).mtimeMs < fs.statSync(model).mtimeMs;
  if (stale) {
    const { writeWebBundle } = await import('../run/web-bundle.js');
    await writeWebBundle(model, dir, { overwrite: true });
  }
  const { default: AdmZip } = await import('adm-zip');
  const zip = new AdmZip();
  zip.addLocalFolder(dir);
  return zip.toBuffer();
}
