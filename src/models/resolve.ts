/**
 * A model reference is a file path or a registry name (`mobilenetv2`, `nsfwjs:MobileNetV2`): the one rule for
 * telling them apart, and the step that turns a name into a cached file, fetching it on first use.
 */
import { createProgress } from '../util/progress.js';
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
      onStart: (total, resumed) => {
        opts.onNote?.(
          `${entry.name} is not in the model cache yet: fetching it from ${entry.download?.url ?? 'its source'}${resumed ? ` (resuming at ${resumed} bytes)` : ''} (first use only)`,
        );
        if (opts.progress !== false) bar.onStart(total, resumed);
      },
      onData: bar.onData,
    });
    return r.path;
  } finally {
    bar.done();
  }
}

/** A download's progress bar in KiB (a bar on a terminal, JSON lines otherwise): started by `onStart`, fed by `onData`. */
export function downloadProgress(name: string): { onStart(total: number | undefined, resumed: number): void; onData(n: number): void; done(): void } {
  let bar: ReturnType<typeof createProgress> | undefined;
  let pending = 0;
  return {
    onStart(total, resumed) {
      bar = createProgress({ total: total ? Math.ceil(total / 1024) : 0, label: `fetch ${name}`, unit: 'KiB' });
      if (resumed >= 1024) bar.tick(Math.floor(resumed / 1024));
    },
    onData(n) {
      pending += n;
      if (pending >= 1024) {
        bar?.tick(Math.floor(pending / 1024));
        pending %= 1024;
      }
    },
    done() {
      if (pending) bar?.tick(1);
      bar?.done();
    },
  };
}
