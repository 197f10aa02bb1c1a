/**
 * `graft adapt --out`: the run folder's `config.json` (what changes the numbers, by flag name, and a fingerprint of
 * the data files), checked on `--resume` so that the candidates read back from the folder (src/adapt/finished.ts)
 * always belong to the command that resumes them.
 */
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { atomicWrite } from '../util/atomic-write.js';
import { CliError } from './context.js';

/**
 * A fingerprint of the files behind a data reference: every file under a folder (or the file itself) by relative
 * path, size and modification time; a built-in name (`mnist`) stands for itself. Files added, removed or rewritten
 * change it; the images a manifest lists are not read (only the manifest).
 */
export function dataFingerprint(ref: string | undefined): string | undefined {
  if (ref === undefined) return undefined;
  let st: fs.Stats;
  try {
    st = fs.statSync(ref);
  } catch {
    return ref; // a built-in name (or a missing path, which loading the data reports)
  }
  const h = createHash('sha256');
  const add = (rel: string, s: fs.Stats) => h.update(`${rel}\0${s.size}\0${s.mtimeMs}\0`);
  if (!st.isDirectory()) add(path.basename(ref), st);
  else
    for (const rel of (fs.readdirSync(ref, { recursive: true }) as string[]).sort()) {
      const s = fs.statSync(path.join(ref, rel));
      if (s.isFile()) add(rel, s);
    }
  return h.digest('hex').slice(0, 16);
}

/** The flags behind a config.json key, for the refusal message. */
function flagsOf(key: string, config: Record<string, unknown>): string {
  if (key === 'methods')
    return typeof config.methods === 'object' && config.methods && !Array.isArray(config.methods)
      ? 'candidates (--candidates, --validator or --ensemble)'
      : 'methods (--method or --compare)';
  if (key === 'data') return 'data files (files under --source, --target, --target-eval or the --model/--encoder file were added, removed or changed since)';
  return `--${key}`;
}

/**
 * Opens `out` as a run folder: a new run needs a folder without a run (or `overwrite`, which empties it); `resume`
 * needs the same `config` as the saved one, else one error naming every flag that differs.
 */
export function openRunFolder(out: string, config: Record<string, unknown>, o: { resume?: boolean; overwrite?: boolean }): void {
  const file = path.join(out, 'config.json');
  if (fs.existsSync(file)) {
    if (o.resume) {
      let old: Record<string, unknown>;
      try {
        old = JSON.parse(fs.readFileSync(file, 'utf8'));
      } catch (e) {
        throw new CliError(`Cannot read ${file} (${(e as Error).message}); the run folder is damaged. Start again with --overwrite.`);
      }
      // (a folder written before the data fingerprint existed has no `data`: its flags alone are compared)
      const diff = Object.keys({ ...old, ...config }).filter(
        (k) => JSON.stringify(old[k]) !== JSON.stringify(config[k]) && !(k === 'data' && old.data === undefined),
      );
      if (diff.length)
        throw new CliError(
          `Cannot resume ${out}: it was run with other ${diff.map((k) => flagsOf(k, config)).join(', ')}. Resume with the same flags and data, or start again with --overwrite.`,
        );
      return;
    }
    if (!o.overwrite)
      throw new CliError(`--out ${out} already holds a graft adapt run. Continue it with --resume, replace it with --overwrite, or choose another --out.`);
    fs.rmSync(out, { recursive: true, force: true });
  }
  fs.mkdirSync(out, { recursive: true });
  atomicWrite(file, `${JSON.stringify(config, null, 2)}\n`);
}
