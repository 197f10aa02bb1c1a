/**
 * onnxruntime's failures in graft's words. Kept free of the onnxruntime import so that the CLI's error
 * formatting can use it without loading the runtime.
 */

/** What to do when onnxruntime runs out of memory; every flag named exists. */
export const OOM_ADVICE =
  'Use a smaller --batch-size, fewer onnxruntime threads (--threads, each keeps its own buffers), or, for graft train, --mode head (the backbone runs once per image, without gradients).';

/** Whether an onnxruntime error message says that memory ran out (std::bad_alloc, "Failed to allocate memory"). */
export function isOrtOutOfMemory(message: string): boolean {
  return /bad_alloc|Failed to allocate memory|out of memory/i.test(message);
}

/** onnxruntime's out-of-memory errors as graft's, with {@link OOM_ADVICE}; any other error is returned unchanged. */
export function withOomAdvice(e: unknown): unknown {
  const message = e instanceof Error ? e.message : String(e);
  if (!isOrtOutOfMemory(message) || message.includes(OOM_ADVICE)) return e;
  return new Error(`onnxruntime ran out of memory (${message.trim().replace(/\.+$/, '')}). ${OOM_ADVICE}`, { cause: e });
}
