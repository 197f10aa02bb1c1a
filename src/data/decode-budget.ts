/**
 * Memory bounds for image decoding. A small file can hold a huge raster (a 1 MB PNG can be 16000×16000), so
 * decoding is bounded by pixels, not by files: {@link maxImagePixels} refuses an image from its header alone,
 * and a {@link DecodeBudget} (a weighted semaphore) keeps the rasters of all decodes in flight — train,
 * predict, eval and extract share one — under a byte bound.
 */

/** Default largest image accepted, in pixels (width × height): 100 megapixels. */
export const DEFAULT_MAX_IMAGE_PIXELS = 100_000_000;
/** Default bound on the rasters being decoded at once: 1 GiB. */
export const DEFAULT_DECODE_MEMORY_MB = 1024;

function positiveEnv(name: string, fallback: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  const v = Number(raw);
  if (!Number.isFinite(v) || v <= 0)
    throw new Error(`${name}=${raw} is not a positive number; set it to a number such as ${fallback}, or unset it for the default.`);
  return v;
}

/** Largest image accepted, in pixels: GRAFT_MAX_IMAGE_PIXELS, default {@link DEFAULT_MAX_IMAGE_PIXELS}. */
export function maxImagePixels(): number {
  return Math.floor(positiveEnv('GRAFT_MAX_IMAGE_PIXELS', DEFAULT_MAX_IMAGE_PIXELS));
}

/**
 * A weighted semaphore over bytes of decoded raster. Waiters are served in arrival order; a weight above the
 * capacity is clamped to it (such an image decodes alone). `inUse` and `peak` are there to be checked.
 */
export class DecodeBudget {
  private used = 0;
  private top = 0;
  private readonly waiting: { weight: number; go: () => void }[] = [];

  constructor(readonly capacity: number) {
    if (!(capacity > 0)) throw new Error(`DecodeBudget: capacity must be a positive byte count, got ${capacity}.`);
  }

  /** Bytes held now. */
  get inUse(): number {
    return this.used;
  }

  /** Most bytes ever held at once. */
  get peak(): number {
    return this.top;
  }

  /** Waits until `weight` bytes fit, takes them, and returns the function that gives them back (once). */
  async acquire(weight: number): Promise<() => void> {
    const w = Math.min(Math.max(1, Math.ceil(weight)), this.capacity);
    if (this.waiting.length === 0 && this.used + w <= this.capacity) this.take(w);
    else await new Promise<void>((go) => this.waiting.push({ weight: w, go }));
    let held = true;
    return () => {
      if (!held) return;
      held = false;
      this.used -= w;
      this.wake();
    };
  }

  private take(w: number): void {
    this.used += w;
    this.top = Math.max(this.top, this.used);
  }

  private wake(): void {
    while (this.waiting.length && this.used + this.waiting[0]!.weight <= this.capacity) {
      const next = this.waiting.shift()!;
      this.take(next.weight);
      next.go();
    }
  }
}

let shared: DecodeBudget | undefined;

/** The process-wide budget: GRAFT_DECODE_MEMORY_MB megabytes, default {@link DEFAULT_DECODE_MEMORY_MB}. */
export function sharedDecodeBudget(): DecodeBudget {
  shared ??= new DecodeBudget(positiveEnv('GRAFT_DECODE_MEMORY_MB', DEFAULT_DECODE_MEMORY_MB) * 1024 * 1024);
  return shared;
}
