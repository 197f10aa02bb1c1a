/** Shared plumbing for CLI commands: global options, output in text or JSON, and the one-line error format. */
import { type Command, InvalidArgumentError } from 'commander';
import type { Device } from '../runtime/device.js';
import { withOomAdvice } from '../runtime/ort-errors.js';

/** Options every command accepts (declared on the root program). */
export interface GlobalOptions {
  /** Seed for every random choice (init, shuffling, augmentation). */
  seed?: number;
  /** onnxruntime intra-op threads. */
  threads?: number;
  /** Where onnxruntime runs: cpu (default) or webgpu. */
  device?: Device;
  /** Machine-readable output: one JSON document on stdout, progress as JSON lines on stderr. */
  json?: boolean;
  /** No progress or informational output; results and errors only. */
  quiet?: boolean;
}

/** The global options as seen from inside a command's action (`this` or the last action argument). */
export function globals(cmd: Command): GlobalOptions {
  return cmd.optsWithGlobals() as GlobalOptions;
}

/** An error whose message is shown to the user as-is (no stack), with exit code 1. */
export class CliError extends Error {
  override name = 'CliError';
}

/**
 * Prints a command's result: `value` as one JSON document under `--json`, else `text()` (a string or lines).
 * Results always go to stdout; use stderr for progress and notes.
 */
export function emit(cmd: Command, value: unknown, text: () => string | string[]): void {
  if (globals(cmd).json) {
    process.stdout.write(`${JSON.stringify(value, (_k, v) => (typeof v === 'bigint' ? Number(v) : v), 2)}\n`);
    return;
  }
  const t = text();
  process.stdout.write(`${Array.isArray(t) ? t.join('\n') : t}\n`);
}

/** Informational note on stderr, suppressed by --quiet and --json. */
export function note(cmd: Command, message: string): void {
  const g = globals(cmd);
  if (!g.quiet && !g.json) process.stderr.write(`${message}\n`);
}

/**
 * The "graft: error: …" line for an error: one line, control characters removed, onnxruntime's out-of-memory
 * failures (from whichever session ran out) with graft's advice; the stack only when GRAFT_DEBUG=1.
 */
export function formatError(e: unknown): string {
  const err = withOomAdvice(e);
  const msg = err instanceof Error ? err.message : String(err);
  const line = msg
    .replace(/\s*\n\s*/g, ' ')
    // biome-ignore lint/suspicious/noControlCharactersInRegex: stripping control characters is the point
    .replace(/[\u0000-\u001f\u007f]/g, '?')
    .trim();
  let out = `graft: error: ${line}`;
  if (process.env.GRAFT_DEBUG === '1' && e instanceof Error && e.stack) out += `\n${e.stack}`;
  return out;
}

/** Parses a non-negative integer option value (commander reports a bad value as a usage error). */
export function positiveInt(name: string): (v: string) => number {
  return (v: string) => {
    const n = Number(v);
    if (!Number.isSafeInteger(n) || n < 0) throw new InvalidArgumentError(`${name} must be a non-negative integer.`);
    return n;
  };
}
