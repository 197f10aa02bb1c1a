/** Append-only JSON Lines logs (one JSON object per line), e.g. training metrics. */
import fs from 'node:fs';
import path from 'node:path';
import { describeFsError } from './fs-errors.js';

/** JSON.stringify that writes bigint as a number (or a string when it does not fit) and non-finite numbers as strings. */
export function toJsonLine(obj: unknown): string {
  return JSON.stringify(obj, (_k, v) => {
    if (typeof v === 'bigint') return Number.isSafeInteger(Number(v)) ? Number(v) : v.toString();
    if (typeof v === 'number' && !Number.isFinite(v)) return String(v);
    return v;
  });
}

/**
 * Appends `obj` as one line of JSON to `file` (created with its folders if missing).
 * Each call is a single append, so concurrent readers (e.g. `tail -f`) never see half a line
 * for lines below the OS's atomic-append size.
 */
export function appendJsonl(file: string, obj: unknown): void {
  const line = `${toJsonLine(obj)}\n`;
  try {
    fs.mkdirSync(path.dirname(path.resolve(file)), { recursive: true });
    fs.appendFileSync(file, line);
  } catch (e) {
    throw new Error(describeFsError('append to', file, e));
  }
}

/** Reads a JSON Lines file back into objects; names the line number of any malformed line. */
export function readJsonl<T = unknown>(file: string): T[] {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (e) {
    throw new Error(describeFsError('read', file, e));
  }
  const out: T[] = [];
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const l = lines[i]!.trim();
    if (!l) continue;
    try {
      out.push(JSON.parse(l) as T);
    } catch {
      // a torn last line after a crash is expected; anything else is corruption
      if (i === lines.length - 1) break;
      throw new Error(`${file}:${i + 1} is not valid JSON. Delete or fix that line.`);
    }
  }
  return out;
}
