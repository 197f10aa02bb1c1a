/**
 * Manifest datasets: a CSV file with a header (`path,label`, extra columns ignored) or a JSONL file of
 * `{"path": …, "label": …}` objects. Relative paths are resolved against the manifest's folder.
 */

import { readFile, realpath, stat } from 'node:fs/promises';
import { dirname, extname, isAbsolute, relative, resolve, sep } from 'node:path';
import { PathDataset } from './base.js';
import { defaultWarn, fewPaths, type WarnFn } from './files.js';

/** How to accept paths outside the manifest's folder, everywhere the option exists. */
const ALLOW_OUTSIDE =
  'allow it explicitly: --allow-outside (graft train, lr-find, pretrain, eval), data.allowOutside: true in graft.yaml, or allowOutside: true for ManifestDataset.load';

/** Options of {@link ManifestDataset.load}. */
export interface ManifestOptions {
  /** Known class names: labels must be one of them (label = index). Default: the distinct labels, sorted. */
  classes?: readonly string[];
  /** Allow paths outside the manifest's folder (default false: such paths are refused). */
  allowOutside?: boolean;
  /** Check that every file exists (default true). */
  checkFiles?: boolean;
  /** 'csv' or 'jsonl'; default from the extension (.jsonl/.ndjson → jsonl, otherwise csv). */
  format?: 'csv' | 'jsonl';
  /** Warning sink (repeated rows); default console.warn. */
  onWarning?: WarnFn;
}

interface Row {
  line: number;
  path: string;
  label?: string;
}

/**
 * Splits CSV text into records (RFC 4180: quoted fields, doubled quotes, CRLF), each with its first line number.
 * `delimiter` is ',' by default ('\t' for TSV).
 */
export function parseCsv(text: string, delimiter = ','): { line: number; fields: string[] }[] {
  const out: { line: number; fields: string[] }[] = [];
  let fields: string[] = [];
  let field = '';
  let inQuotes = false;
  let line = 1;
  let start = 1;
  let any = false;
  const endRecord = () => {
    fields.push(field);
    if (any || fields.length > 1 || fields[0] !== '') out.push({ line: start, fields });
    fields = [];
    field = '';
    any = false;
  };
  for (let i = 0; i < text.length; i++) {
    const c = text[i]!;
    if (inQuotes) {
      if (c === '"') {
        if (text[i + 1] === '"') {
          field += '"';
          i++;
        } else inQuotes = false;
      } else {
        if (c === '\n') line++;
        field += c;
      }
    } else if (c === '"') {
      inQuotes = true;
      any = true;
    } else if (c === delimiter) {
      fields.push(field);
      field = '';
    } else if (c === '\n' || c === '\r') {
      if (c === '\r' && text[i + 1] === '\n') i++;
      endRecord();
      line++;
      start = line;
    } else field += c;
  }
  if (field !== '' || fields.length || any) endRecord();
  return out;
}

function parseCsvRows(text: string, file: string): { rows: Row[]; labelled: boolean } {
  const records = parseCsv(text.replace(/^\uFEFF/, ''));
  if (records.length === 0) throw new Error(`Manifest ${file} is empty; add a header line "path,label" and one line per image.`);
  const header = records[0]!.fields.map((h) => h.trim().toLowerCase());
  const pi = header.indexOf('path');
  const li = header.indexOf('label');
  if (pi < 0) {
    throw new Error(
      `Manifest ${file} line ${records[0]!.line}: the header (${records[0]!.fields.join(',')}) has no "path" column; start the file with "path,label".`,
    );
  }
  const rows: Row[] = [];
  for (const r of records.slice(1)) {
    if (r.fields.length !== header.length) {
      throw new Error(`Manifest ${file} line ${r.line}: ${r.fields.length} fields but the header has ${header.length}; quote fields that contain commas.`);
    }
    const row: Row = { line: r.line, path: r.fields[pi]!.trim() };
    if (li >= 0) row.label = r.fields[li]!.trim();
    rows.push(row);
  }
  return { rows, labelled: li >= 0 };
}

function parseJsonlRows(text: string, file: string): { rows: Row[]; labelled: boolean } {
  const rows: Row[] = [];
  let labelled: boolean | undefined;
  text.split(/\r?\n/).forEach((raw, i) => {
    const s = raw.replace(/^\uFEFF/, '').trim();
    if (!s) return;
    const line = i + 1;
    let obj: unknown;
    try {
      obj = JSON.parse(s);
    } catch (e) {
      throw new Error(
        `Manifest ${file} line ${line}: invalid JSON (${(e as Error).message}); each line must be one object like {"path": "a.jpg", "label": "cat"}.`,
      );
    }
    const o = obj as { path?: unknown; label?: unknown };
    if (typeof obj !== 'object' || obj === null || typeof o.path !== 'string') {
      throw new Error(`Manifest ${file} line ${line}: expected an object with a string "path", like {"path": "a.jpg", "label": "cat"}.`);
    }
    const has = o.label !== undefined && o.label !== null;
    if (labelled === undefined) labelled = has;
    else if (labelled !== has)
      throw new Error(`Manifest ${file} line ${line}: ${has ? 'has' : 'lacks'} a "label" unlike earlier lines; label every line or none.`);
    if (has && typeof o.label !== 'string' && typeof o.label !== 'number') {
      throw new Error(`Manifest ${file} line ${line}: "label" must be a string (class name) or a number, got ${JSON.stringify(o.label)}.`);
    }
    const row: Row = { line, path: o.path.trim() };
    if (has) row.label = String(o.label).trim();
    rows.push(row);
  });
  return { rows, labelled: labelled ?? false };
}

/** Sorts class names: numerically when all are integers, otherwise alphabetically. */
export function sortClasses(names: Iterable<string>): string[] {
  const u = [...new Set(names)];
  if (u.every((s) => /^-?\d+$/.test(s))) return u.sort((a, b) => Number(a) - Number(b));
  return u.sort();
}

function escapes(root: string, p: string): boolean {
  const rel = relative(root, p);
  return rel === '..' || rel.startsWith(`..${sep}`) || isAbsolute(rel);
}

/** Images listed in a CSV or JSONL manifest. */
export class ManifestDataset extends PathDataset {
  readonly kind = 'manifest';

  /**
   * Reads and validates a manifest.
   * @throws naming the file and line for: a missing header column, malformed lines, empty paths or labels,
   *   labels not in `classes`, paths escaping the manifest's folder (unless `allowOutside`), missing files.
   */
  static async load(file: string, opts: ManifestOptions = {}): Promise<ManifestDataset> {
    const abs = resolve(file);
    let text: string;
    try {
      text = await readFile(abs, 'utf8');
    } catch (e) {
      throw new Error(`Cannot read manifest ${abs}: ${(e as Error).message}; check the path and its permissions.`);
    }
    const ext = extname(abs).toLowerCase();
    const format = opts.format ?? (ext === '.jsonl' || ext === '.ndjson' ? 'jsonl' : 'csv');
    const { rows, labelled } = format === 'jsonl' ? parseJsonlRows(text, abs) : parseCsvRows(text, abs);
    if (rows.length === 0) throw new Error(`Manifest ${abs} lists no images; add one line per image.`);
    const root = dirname(abs);
    const paths: string[] = [];
    for (const r of rows) {
      if (!r.path) throw new Error(`Manifest ${abs} line ${r.line}: empty path; give the image file, relative to ${root} or absolute.`);
      const p = resolve(root, r.path);
      if (!opts.allowOutside && escapes(root, p)) {
        throw new Error(
          `Manifest ${abs} line ${r.line}: path ${r.path} points outside the manifest's folder ${root}; move the images (or the manifest) so the manifest's folder holds them, or ${ALLOW_OUTSIDE}.`,
        );
      }
      paths.push(p);
    }
    let labels: Int32Array | undefined;
    let classes: string[] = [];
    if (labelled) {
      for (const r of rows) if (!r.label) throw new Error(`Manifest ${abs} line ${r.line}: empty label; give the class name of ${r.path}.`);
      classes = opts.classes ? [...opts.classes] : sortClasses(rows.map((r) => r.label!));
      const index = new Map(classes.map((c, i) => [c, i]));
      labels = new Int32Array(rows.length);
      rows.forEach((r, i) => {
        const l = index.get(r.label!);
        if (l === undefined) {
          throw new Error(
            `Manifest ${abs} line ${r.line}: unknown label "${r.label}"; known classes are ${fewPaths(classes, 10)}: fix the label or add the class to the class list.`,
          );
        }
        labels![i] = l;
      });
    }
    warnRepeats(abs, rows, paths, opts.onWarning ?? defaultWarn);
    if (opts.checkFiles ?? true) await checkFiles(abs, root, rows, paths, opts.allowOutside ?? false);
    return new ManifestDataset(abs, paths, labels, classes);
  }
}

/** Warns, with counts, when rows list the same file again (it counts twice and can land in train and val). */
function warnRepeats(manifest: string, rows: Row[], paths: string[], warn: WarnFn): void {
  const first = new Map<string, number>();
  const examples: string[] = [];
  let repeats = 0;
  let conflicting = 0;
  paths.forEach((p, i) => {
    const f = first.get(p);
    if (f === undefined) {
      first.set(p, i);
      return;
    }
    repeats++;
    if (rows[f]!.label !== rows[i]!.label) conflicting++;
    if (examples.length < 3) examples.push(`line ${rows[i]!.line} repeats line ${rows[f]!.line}: ${rows[i]!.path}`);
  });
  if (repeats === 0) return;
  warn(
    `manifest ${manifest} lists the same file again on ${repeats} row(s)${conflicting ? ` (${conflicting} with a different label)` : ''} (${examples.join('; ')}); ` +
      'a repeated file counts twice and can end up in both train and val: remove the repeated lines.',
  );
}

/** Verifies that files exist and (unless allowed) do not escape `root` through symbolic links. */
async function checkFiles(manifest: string, root: string, rows: Row[], paths: string[], allowOutside: boolean): Promise<void> {
  const realRoot = allowOutside ? root : await realpath(root);
  const missing: string[] = [];
  const chunk = 256;
  for (let s = 0; s < paths.length; s += chunk) {
    await Promise.all(
      paths.slice(s, s + chunk).map(async (p, k) => {
        const r = rows[s + k]!;
        try {
          const st = await stat(p);
          if (!st.isFile()) missing.push(`line ${r.line}: ${r.path} (not a file)`);
        } catch {
          missing.push(`line ${r.line}: ${r.path}`);
          return;
        }
        if (!allowOutside && escapes(realRoot, await realpath(p))) {
          throw new Error(
            `Manifest ${manifest} line ${r.line}: ${r.path} is a symbolic link to a file outside ${root}; copy the file under the folder, or ${ALLOW_OUTSIDE}.`,
          );
        }
      }),
    );
  }
  if (missing.length) {
    missing.sort((a, b) => Number(a.split(/[ :]/)[1]) - Number(b.split(/[ :]/)[1]));
    throw new Error(
      `Manifest ${manifest}: ${missing.length} listed file(s) do not exist (${fewPaths(missing)}); fix the paths (relative to ${root}) or remove those lines.`,
    );
  }
}
