/** `graft ui`'s data routes: what the page can choose from, a look at an image folder, image thumbnails, and images dragged into a class. */
import fs from 'node:fs';
import path from 'node:path';
import type { FastifyInstance } from 'fastify';
import { isImageFile } from '../data/files.js';
import { cacheState, loadRegistry, modelsDir } from '../models/index.js';
import { thumbnailDataUri } from '../report/thumbnails.js';
import { ARCHS, getPath, readConfigFile } from '../run/config.js';
import { summarizeData } from '../run/data-summary.js';
import { TRAIN_MODES } from '../train/recipes.js';
import type { BackboneChoice, UiInfo } from './api-types.js';
import type { UiContext } from './app.js';
import { HttpError, insideFolders } from './guard.js';
import { readImageUpload } from './upload.js';

/** Registers GET /api/info, /api/data, /api/image and POST /api/data/images. */
export function registerDataRoutes(app: FastifyInstance, ctx: UiContext): void {
  app.get('/api/info', async (): Promise<UiInfo> => {
    const dir = modelsDir();
    const backbones: BackboneChoice[] = [
      ...ARCHS.map((name) => ({ kind: 'arch' as const, name, description: `built-in ${name}, trained from scratch` })),
      ...loadRegistry()
        .filter((e) => e.download || e.nsfwjs)
        .map((e) => ({ kind: 'registry' as const, name: e.name, description: e.description, cached: cacheState(e, dir) === 'cached' })),
    ];
    return { folders: ctx.folders, runsDir: ctx.runsDir, modes: TRAIN_MODES, backbones };
  });

  app.get('/api/data', async (req) => {
    const q = req.query as { folder?: string; valSplit?: string };
    const folder = insideFolders(ctx.folders, q.folder ?? ctx.folders[0]!);
    // the split a run would make: the config file's data.valSplit and run.seed, unless the page asks for another
    const file = ctx.configFile ? readConfigFile(ctx.configFile) : {};
    const fromFile = (key: string) => (typeof getPath(file, key) === 'number' ? (getPath(file, key) as number) : undefined);
    const valSplit = q.valSplit !== undefined ? Number(q.valSplit) : fromFile('data.valSplit');
    if (valSplit !== undefined && !(valSplit >= 0 && valSplit < 1)) throw new HttpError(400, `valSplit must be a number in [0, 1), got ${q.valSplit}.`);
    return summarizeData(folder, { valSplit, seed: fromFile('run.seed') });
  });

  app.get('/api/image', async (req, reply) => {
    const q = req.query as { path?: string; size?: string };
    const file = insideFolders([...ctx.folders, ctx.runsDir], q.path ?? '');
    if (!isImageFile(file) || !fs.statSync(file, { throwIfNoEntry: false })?.isFile())
      throw new HttpError(404, `${q.path} is not an image file (${file}); thumbnails are served for image files only.`);
    const size = Math.min(512, Math.max(16, Number(q.size) || 96));
    const uri = await thumbnailDataUri(file, size);
    if (!uri) throw new HttpError(422, `${file} cannot be decoded as an image (corrupt or unsupported).`);
    return reply
      .type('image/jpeg')
      .header('cache-control', 'private, max-age=300')
      .send(Buffer.from(uri.slice(uri.indexOf(',') + 1), 'base64'));
  });

  // images dragged into a class: written into <folder>/<class>/ (created), never over an existing file
  app.post('/api/data/images', async (req, reply) => {
    const q = req.query as { folder?: string; class?: string };
    const folder = insideFolders(ctx.folders, q.folder ?? ctx.folders[0]!);
    const cls = q.class ?? '';
    if (!/^[\w][\w .-]*$/.test(cls) || cls.length > 100)
      throw new HttpError(400, `"${cls}" is not a class name; use letters, digits, spaces, ".", "_" and "-" (not starting with "." or a space).`);
    const dir = insideFolders(ctx.folders, path.join(folder, cls));
    const written: string[] = [];
    for await (const file of req.files({ limits: { files: 100, fileSize: ctx.maxUploadBytes } })) {
      const buf = await readImageUpload(file, ctx).catch((e: HttpError) => {
        if (written.length) e.message += ` The ${written.length} image(s) before it were added to ${cls}.`;
        throw e;
      });
      const base = path.basename(file.filename).replace(/[^\w.-]/g, '_');
      if (!isImageFile(base)) throw new HttpError(422, `${file.filename}: the name needs an image extension (.jpg, .png, .webp, …) so graft lists it.`);
      fs.mkdirSync(dir, { recursive: true });
      const ext = path.extname(base);
      let name = base;
      for (let i = 1; fs.existsSync(path.join(dir, name)); i++) name = `${path.basename(base, ext)}-${i}${ext}`;
      fs.writeFileSync(path.join(dir, name), buf, { flag: 'wx' });
      written.push(path.join(dir, name));
    }
    if (!written.length) throw new HttpError(400, 'Send one or more images as multipart/form-data.');
    return reply.code(201).send({ class: cls, written });
  });
}
