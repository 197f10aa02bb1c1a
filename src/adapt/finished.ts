/**
 * A finished candidate run, kept in its own run folder (`<checkpointDir>/<method>-seed<seed>/finished.ckpt`) as
 * soon as it ends, so that `--compare` and `--method auto` with `resume` read it back instead of running it again.
 * The file holds the run's scores (everything of {@link AdaptResult} but the models) and the tensors its selected
 * and last models changed from the starting model (for a frozen backbone, only the head), with a checksum of the
 * starting model: a resumed command that starts from another model is refused rather than given a wrong model.
 * Written atomically (step/checkpoint.ts), so a kill leaves either the whole record or none.
 */
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { type Model, withInitializers } from '../ir/model.js';
import { loadCheckpoint, saveCheckpoint } from '../step/checkpoint.js';
import type { Tensor } from '../tensor.js';
import type { AdaptResult } from './run.js';

/** The file name of a finished run's record inside its run folder. */
export const FINISHED_FILE = 'finished.ckpt';

const bytesOf = (t: Tensor) => Buffer.from(t.data.buffer, t.data.byteOffset, t.data.byteLength);
const same = (a: Tensor, b: Tensor) => a === b || (a.dtype === b.dtype && a.dims.join() === b.dims.join() && bytesOf(a).equals(bytesOf(b)));

/** SHA-256 over the starting model's initializers (names, types, shapes, bytes): what a record's tensors are folded onto. */
export function modelChecksum(model: Model): string {
  const h = createHash('sha256');
  for (const name of [...model.graph.initializers.keys()].sort()) {
    const t = model.graph.initializers.get(name)!;
    h.update(`${name}\0${t.dtype}\0${t.dims.join(',')}\0`);
    h.update(bytesOf(t));
  }
  return h.digest('hex');
}

/** The initializers of `m` that differ from `start`'s. */
function changed(m: Model, start: Model): [string, Tensor][] {
  return [...m.graph.initializers].filter(([k, t]) => {
    const s = start.graph.initializers.get(k);
    return !s || !same(s, t);
  });
}

/** Writes `r` (a finished run that started from `start`) to `<dir>/finished.ckpt`. */
export function saveFinished(dir: string, r: AdaptResult, start: Model): void {
  const { model, lastModel, auto: _a, ...record } = r;
  const tensors = new Map<string, Tensor>();
  for (const [k, t] of changed(model, start)) tensors.set(`selected/${k}`, t);
  const lastIsSelected = lastModel === model;
  if (!lastIsSelected) for (const [k, t] of changed(lastModel, start)) tensors.set(`last/${k}`, t);
  fs.mkdirSync(dir, { recursive: true });
  saveCheckpoint(path.join(dir, FINISHED_FILE), { meta: { step: r.steps, run: record, lastIsSelected, start: modelChecksum(start) }, tensors });
}

/**
 * The finished run recorded in `<dir>/finished.ckpt`, its models rebuilt on `start`; undefined when the run did not
 * finish. Throws when the record is of another method or seed, or was trained from another starting model.
 */
export function loadFinished(dir: string, start: Model, expect: { method: string; seed: number }): AdaptResult | undefined {
  const file = path.join(dir, FINISHED_FILE);
  if (!fs.existsSync(file)) return undefined;
  const ck = loadCheckpoint(file);
  const meta = ck.meta as unknown as { run: Omit<AdaptResult, 'model' | 'lastModel'>; lastIsSelected: boolean; start: string };
  if (meta.run.method !== expect.method || meta.run.seed !== expect.seed)
    throw new Error(
      `${file} records ${meta.run.method} (seed ${meta.run.seed}), not ${expect.method} (seed ${expect.seed}); the run folder was changed by hand. Start again with --overwrite.`,
    );
  if (meta.start !== modelChecksum(start))
    throw new Error(
      `${file} was trained from another starting model than this command builds (another --model file, or another --width or --bottleneck); resume with the same model, or start again with --overwrite.`,
    );
  const part = (prefix: string) => [...ck.tensors].filter(([k]) => k.startsWith(prefix)).map(([k, t]) => [k.slice(prefix.length), t] as [string, Tensor]);
  const model = withInitializers(start, part('selected/'));
  const lastModel = meta.lastIsSelected ? model : withInitializers(start, part('last/'));
  return { ...meta.run, model, lastModel };
}
