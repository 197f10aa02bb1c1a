/**
 * Train/val/test leakage: the same file, or a file with the same content, in two splits makes validation and
 * test scores measure memory instead of generalisation. {@link findSplitLeaks} counts both per pair of
 * splits; contents are compared by the content hash the feature cache keys its rows by.
 */
import { resolve } from 'node:path';
import { hashFile } from '../features/cache.js';

/** The files of one split. */
export interface SplitFiles {
  /** Name for messages, e.g. 'train'. */
  name: string;
  paths: readonly string[];
}

/** Files of split `b` also in split `a` (an earlier split). */
export interface SplitLeak {
  a: string;
  b: string;
  /** Files of b listed in a under the same path. */
  samePath: number;
  /** Further files of b whose content equals a file of a. */
  sameContent: number;
  /** A few of them, as "b-path (= a-path)". */
  examples: string[];
}

/** Options of {@link findSplitLeaks}. */
export interface LeakOptions {
  /** Files hashed at once (default 8). */
  concurrency?: number;
}

/** Content hashes of `paths` (undefined for a file that cannot be read: the image validation reports those). */
async function hashAll(paths: readonly string[], concurrency: number): Promise<(string | undefined)[]> {
  const out: (string | undefined)[] = new Array(paths.length);
  let next = 0;
  const slot = async () => {
    while (next < paths.length) {
      const i = next++;
      out[i] = await hashFile(paths[i]!).catch(() => undefined);
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(concurrency, paths.length)) }, slot));
  return out;
}

/**
 * Compares every pair of splits (in the given order) by path and by file content.
 * @returns one entry per pair that shares files; none when the splits are disjoint.
 */
export async function findSplitLeaks(splits: readonly SplitFiles[], opts: LeakOptions = {}): Promise<SplitLeak[]> {
  if (splits.length < 2) return [];
  const concurrency = opts.concurrency ?? 8;
  const resolved = splits.map((s) => s.paths.map((p) => resolve(p)));
  const hashes: (string | undefined)[][] = [];
  for (const paths of resolved) hashes.push(await hashAll(paths, concurrency));
  const leaks: SplitLeak[] = [];
  for (let ia = 0; ia < splits.length; ia++) {
    const byPath = new Set(resolved[ia]);
    const byHash = new Map<string, string>();
    resolved[ia]!.forEach((p, k) => {
      const h = hashes[ia]![k];
      if (h !== undefined && !byHash.has(h)) byHash.set(h, p);
    });
    for (let ib = ia + 1; ib < splits.length; ib++) {
      const leak: SplitLeak = { a: splits[ia]!.name, b: splits[ib]!.name, samePath: 0, sameContent: 0, examples: [] };
      resolved[ib]!.forEach((p, k) => {
        const h = hashes[ib]![k];
        const twin = h === undefined ? undefined : byHash.get(h);
        if (byPath.has(p)) leak.samePath++;
        else if (twin !== undefined) leak.sameContent++;
        else return;
        if (leak.examples.length < 3) leak.examples.push(byPath.has(p) ? p : `${p} (= ${twin})`);
      });
      if (leak.samePath + leak.sameContent > 0) leaks.push(leak);
    }
  }
  return leaks;
}

/** One warning line per leak: the counts, the fix, a few examples. */
export function leakWarning(l: SplitLeak): string {
  const parts = [
    ...(l.samePath ? [`${l.samePath} file(s) are in both`] : []),
    ...(l.sameContent ? [`${l.sameContent} ${l.samePath ? 'more ' : ''}file(s) have the same content as a ${l.a} file`] : []),
  ];
  return (
    `${l.b} overlaps ${l.a}: ${parts.join(', and ')} (e.g. ${l.examples.join(', ')}); ` +
    `its scores are inflated: remove the duplicates from one of the two sets.`
  );
}
