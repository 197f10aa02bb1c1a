/**
 * A model reference is a file path or a registry name (`mobilenetv2`, `nsfwjs:MobileNetV2`): the one rule for
 * telling them apart, and the step that turns a name into a cached file, fetching it on first use.
 */
import { createProgress, type OnTaskProgress } from '../util/progress.js';
import { fetchModel } from './fetch.js';
import { registryEntryOf } from './name.js';

/** Options of {@link resolveModelRef}. */
export interface ResolveModelOptions {
  /** Model cache folder (default: GRAFT_MODELS_DIR, else ~/.cache/graft/models). */
  dir?: string;
  /** Mirror URL prefix (default: GRAFT_MODEL_MIRROR). */
  mirror?: string;
  /** The one line saying a model is being fetched on first use (a run's 'note' event, stderr in the CLI). */
  onNote?: (message: string) => void;
  /** Warnings (an op graft does not know in the fetched model). */
  onWarning?: (message: string) => void;
  /** Show a download bar (a bar on a terminal, JSON lines otherwise; default true). */
  progress?: boolean;
  /**
   * Download progress: the bytes received so far and the file's size when known, called as the bar is (e.g.
   * {@link downloadTaskProgress} turns it into a run's `progress` events; pass `progress: false` then).
   */
  onProgress?: (received: number, total: number | undefined) => void;
}

/**
 * The file a model reference names: a path as it is; `nsfwjs:<name>` as it is too (graft's importer converts it
 * in-process); any other registry name is fetched into the model cache on first use (one note says so) and its
 * cached path returned.
 * @throws for an unknown name (listing the known ones), or the fetch's error (offline: naming the mirror setting).
 */
export async function resolveModelRef(ref: string, opts: ResolveModelOptions = {}): Promise<string> {
  const entry = registryEntryOf(ref);
  if (!entry) return ref;
  const bar = downloadProgress(entry.name);
  try {
    const r = await fetchModel(entry, {
      dir: opts.dir,
      mirror: opts.mirror,
      log: opts.onNote,
      warn: opts.onWarning,
      onStart: (_total, resumed) => {
        opts.onNote?.(
          `${entry.name} is not in the model cache yet: fetching it from ${entry.download?.url ?? 'its source'}${resumed ? ` (resuming at ${resumed} bytes)` : ''} (first use only)`,
        );
      },
      onProgress: (received, total) => {
        if (opts.progress !== false) bar.onProgress(received, total);
        opts.onProgress?.(received, total);
      },
    });
    return r.path;
  } finally {
    bar.done();
  }
}

/**
 * A download's progress bar in KiB (a bar on a terminal, JSON lines otherwise), drawn from a download's
 * `onProgress(received, total)`: it starts on the first call (at the bytes an interrupted download resumes from).
 */
export function downloadProgress(name: string): { onProgress(received: number, total: number | undefined): void; done(): void } {
  let bar: ReturnType<typeof createProgress> | undefined;
  let shown = 0;
  let last = 0;
  const show = (kib: number) => {
    if (kib > shown) bar?.tick(kib - shown);
    shown = Math.max(shown, kib);
  };
  return {
    onProgress(received, total) {
      bar ??= createProgress({ total: total ? Math.ceil(total / 1024) : 0, label: `fetch ${name}`, unit: 'KiB' });
      last = received;
      show(Math.floor(received / 1024));
    },
    done() {
      show(Math.ceil(last / 1024));
      bar?.done();
    },
  };
}

/**
 * A download's `onProgress(received, total)` as {@link TaskProgress} reports in KiB (`fetching <name>`), for a
 * run's `progress` events: one at the start, one per percent, and the last with done = total. A download whose
 * size is unknown reports nothing (its note says it is being fetched).
 */
export function downloadTaskProgress(name: string, report: OnTaskProgress): (received: number, total: number | undefined) => void {
  let lastPct = -1;
  return (received, total) => {
    if (!total) return;
    const totalKib = Math.ceil(total / 1024);
    const done = received >= total ? totalKib : Math.min(Math.floor(received / 1024), totalKib - 1);
    const pct = Math.floor((100 * done) / totalKib);
    if (pct === lastPct && done < totalKib) return;
    lastPct = pct;
    report({ task: `fetching ${name}`, done, total: totalKib, unit: 'KiB' });
  };
}
