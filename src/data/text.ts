/**
 * Text datasets: a table (CSV, TSV or JSONL) with a text column and a label column, or a folder of `.txt`
 * files with one sub-folder per class (`root/<class>/<file>.txt`, one text per file). Every text remembers where
 * it came from (`file:line` or the file path), so each warning and error names the place to fix.
 *
 * Bad input never passes silently and loses nothing: bytes that are not UTF-8, a missing column, an empty or
 * missing label are errors naming `file:line`; an empty text is skipped with one warning listing its lines (an
 * error with `strict`); a huge text is kept, with a warning that the encoder reads only its first tokens.
 */

import { readFile } from 'node:fs/promises';
import { extname, join, resolve } from 'node:path';
import { defaultWarn, fewPaths, readFolder, type WarnFn, warnLeftOut } from './files.js';
import { parseCsv, sortClasses } from './manifest.js';

/** File extensions read as text tables. */
export const TEXT_TABLE_EXTENSIONS: readonly string[] = ['.csv', '.tsv', '.jsonl', '.ndjson'];

/** A text longer than this (in characters) gets a warning: the encoder sees only its first tokens. */
export const HUGE_TEXT_CHARS = 100_000;

/** Labelled (or unlabelled) texts, in file order. */
export interface TextData {
  /** The file or folder they come from. */
  where: string;
  texts: string[];
  /** Class index of each text; undefined when the table has no label column. */
  labels?: Int32Array;
  /** Class names (index = label); empty when unlabelled. */
  classes: string[];
  /** Where each text comes from: `file:line` for a table, the file for a folder. */
  origins: string[];
}

/** Options of {@link loadTextData}. */
export interface TextLoadOptions {
  /** Known class names (label = index): every label must be one of them. Default: the distinct labels, sorted. */
  classes?: readonly string[];
  /** Column (CSV/TSV header, JSONL key) holding the text (default 'text'). */
  textColumn?: string;
  /** Column holding the label (default 'label'). */
  labelColumn?: string;
  /** Require a label column (default true); with false, labels are read when the table has them. */
  labelled?: boolean;
  /** An empty text is an error instead of being skipped with a warning (default false). */
  strict?: boolean;
  /** Warning sink (default console.warn). */
  onWarning?: WarnFn;
}

/** Whether `ref` names a text table by its extension (.csv, .tsv, .jsonl, .ndjson). */
export function isTextTable(ref: string): boolean {
  return TEXT_TABLE_EXTENSIONS.includes(extname(ref).toLowerCase());
}

/**
 * Decodes UTF-8 bytes strictly (a leading byte-order mark is dropped).
 * @throws naming `where`, the line and the byte offset of the first invalid sequence, and how to convert the file.
 */
export function decodeUtf8(bytes: Uint8Array, where: string): string {
  try {
    return new TextDecoder('utf-8', { fatal: true, ignoreBOM: false }).decode(bytes);
  } catch {
    const { line, offset } = firstInvalidUtf8(bytes);
    throw new Error(
      `${where}:${line}: the bytes at offset ${offset} are not valid UTF-8 (graft reads text as UTF-8); ` +
        `convert the file, e.g. \`iconv -f latin1 -t utf-8 ${where} > fixed${extname(where)}\`, or fix that line.`,
    );
  }
}

/** The 1-based line and byte offset of the first invalid UTF-8 sequence. */
function firstInvalidUtf8(b: Uint8Array): { line: number; offset: number } {
  // decoding replaces each invalid sequence by U+FFFD; the first byte where the re-encoding differs is the culprit
  const again = Buffer.from(Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('utf8'), 'utf8');
  let offset = 0;
  while (offset < b.length && b[offset] === again[offset]) offset++;
  let line = 1;
  for (let i = 0; i < offset; i++) if (b[i] === 0x0a) line++;
  return { line, offset };
}

interface RawRow {
  origin: string;
  text: string;
  label?: string;
}

function tableRows(text: string, file: string, format: 'csv' | 'tsv' | 'jsonl', textCol: string, labelCol: string): { rows: RawRow[]; labelled: boolean } {
  if (format === 'jsonl') return jsonlRows(text, file, textCol, labelCol);
  const records = parseCsv(text.replace(/^\uFEFF/, ''), format === 'tsv' ? '\t' : ',');
  if (records.length === 0) throw new Error(`${file} is empty; add a header line "${textCol},${labelCol}" and one line per text.`);
  const head = records[0]!;
  const header = head.fields.map((h) => h.trim().toLowerCase());
  const ti = header.indexOf(textCol.toLowerCase());
  const li = header.indexOf(labelCol.toLowerCase());
  if (ti < 0)
    throw new Error(
      `${file}:${head.line}: the header (${head.fields.join(format === 'tsv' ? '\\t' : ',')}) has no "${textCol}" column; ` +
        `start the file with a header such as "${textCol}${format === 'tsv' ? '\\t' : ','}${labelCol}", or name the text column (data.textColumn / --text-column).`,
    );
  const rows: RawRow[] = [];
  for (const r of records.slice(1)) {
    if (r.fields.length !== header.length)
      throw new Error(
        `${file}:${r.line}: ${r.fields.length} fields but the header has ${header.length}; ` +
          `put a text holding ${format === 'tsv' ? 'tabs' : 'commas'}, quotes or line breaks in double quotes ("…", with "" for a quote).`,
      );
    rows.push({ origin: `${file}:${r.line}`, text: r.fields[ti]!, label: li >= 0 ? r.fields[li]!.trim() : undefined });
  }
  return { rows, labelled: li >= 0 };
}

function jsonlRows(text: string, file: string, textCol: string, labelCol: string): { rows: RawRow[]; labelled: boolean } {
  const rows: RawRow[] = [];
  let labelled: boolean | undefined;
  text.split('\n').forEach((raw, i) => {
    const s = (i === 0 ? raw.replace(/^\uFEFF/, '') : raw).trim();
    if (!s) return;
    const origin = `${file}:${i + 1}`;
    let obj: unknown;
    try {
      obj = JSON.parse(s);
    } catch (e) {
      throw new Error(`${origin}: invalid JSON (${(e as Error).message}); each line must be one object like {"${textCol}": "…", "${labelCol}": "spam"}.`);
    }
    const o = (obj && typeof obj === 'object' && !Array.isArray(obj) ? obj : {}) as Record<string, unknown>;
    if (typeof o[textCol] !== 'string')
      throw new Error(
        `${origin}: no string "${textCol}" field (keys: ${Object.keys(o).join(', ') || 'none'}); each line must be an object like {"${textCol}": "…", "${labelCol}": "spam"}, or name the text field (data.textColumn / --text-column).`,
      );
    const l = o[labelCol];
    const has = l !== undefined && l !== null;
    if (labelled === undefined) labelled = has;
    else if (labelled !== has) throw new Error(`${origin}: ${has ? 'has' : 'lacks'} a "${labelCol}" unlike earlier lines; label every line or none.`);
    if (has && typeof l !== 'string' && typeof l !== 'number')
      throw new Error(`${origin}: "${labelCol}" must be a string (class name) or a number, got ${JSON.stringify(l)}.`);
    rows.push({ origin, text: o[textCol] as string, label: has ? String(l).trim() : undefined });
  });
  return { rows, labelled: labelled ?? false };
}

async function readUtf8(file: string): Promise<string> {
  let bytes: Buffer;
  try {
    bytes = await readFile(file);
  } catch (e) {
    throw new Error(`Cannot read ${file} (${(e as NodeJS.ErrnoException).code ?? (e as Error).message}); check the path and its permissions.`);
  }
  return decodeUtf8(bytes, file);
}

async function folderRows(root: string, warn: WarnFn): Promise<RawRow[]> {
  const { entries, leftOut } = await readFolder(root, 'text folder');
  const dirs = entries.filter((e) => e.kind === 'dir');
  const loose = entries.filter((e) => e.kind !== 'dir').map((e) => e.name);
  if (loose.length) warn(`ignoring ${loose.length} file(s) directly in ${root} (${fewPaths(loose)}); texts must be inside one folder per class.`);
  if (dirs.length === 0) throw new Error(`Text folder ${root} has no class sub-folders; lay it out as ${root}/<class name>/<file>.txt (one folder per class).`);
  const rows: RawRow[] = [];
  const skipped: string[] = [];
  for (const d of dirs) {
    const listing = await readFolder(d.path, 'class folder');
    leftOut.push(...listing.leftOut);
    const files = listing.entries.filter((e) => e.kind === 'file');
    for (const f of files) {
      if (extname(f.name).toLowerCase() !== '.txt') {
        skipped.push(f.path);
        continue;
      }
      rows.push({ origin: f.path, text: await readUtf8(f.path), label: d.name });
    }
    for (const e of listing.entries) if (e.kind === 'dir') skipped.push(`${join(d.path, e.name)}/`);
    if (!files.some((f) => extname(f.name).toLowerCase() === '.txt'))
      throw new Error(`Class folder ${d.path} holds no .txt files; add one text per .txt file, or remove the folder.`);
  }
  if (skipped.length) warn(`skipping ${skipped.length} entr(ies) that are not .txt files in ${root}: ${fewPaths(skipped)}.`);
  warnLeftOut(warn, leftOut);
  return rows;
}

/**
 * Reads a text table (.csv, .tsv, .jsonl/.ndjson) or a folder of .txt files per class.
 * @throws naming `file:line` for: bytes that are not UTF-8, a missing text column, a row with the wrong number of
 *   fields, an empty or unknown label, a missing label column when labels are required, no texts at all; with
 *   `strict`, an empty text.
 */
export async function loadTextData(ref: string, opts: TextLoadOptions = {}): Promise<TextData> {
  const warn = opts.onWarning ?? defaultWarn;
  const where = resolve(ref);
  const textCol = opts.textColumn ?? 'text';
  const labelCol = opts.labelColumn ?? 'label';
  const needLabels = opts.labelled ?? true;
  let rows: RawRow[];
  let labelled = true;
  if (isTextTable(where)) {
    const ext = extname(where).toLowerCase();
    const format = ext === '.tsv' ? 'tsv' : ext === '.csv' ? 'csv' : 'jsonl';
    ({ rows, labelled } = tableRows(await readUtf8(where), where, format, textCol, labelCol));
  } else rows = await folderRows(where, warn);
  if (needLabels && !labelled)
    throw new Error(
      `${where}:1: no "${labelCol}" column; training needs a label per text (header "${textCol},${labelCol}"), or name it (data.labelColumn / --label-column).`,
    );
  if (labelled) for (const r of rows) if (!r.label) throw new Error(`${r.origin}: empty label; give the class of this text.`);
  const empty = rows.filter((r) => r.text.trim() === '');
  if (empty.length) {
    const msg = `${empty.length} empty text(s) (${fewPaths(empty.map((r) => r.origin))})`;
    if (opts.strict) throw new Error(`${msg}; fill them in or remove those lines.`);
    warn(`skipping ${msg}; fill them in or remove those lines.`);
    rows = rows.filter((r) => r.text.trim() !== '');
  }
  if (rows.length === 0) throw new Error(`${where} holds no texts; add one line (or .txt file) per text.`);
  const huge = rows.filter((r) => r.text.length > HUGE_TEXT_CHARS);
  if (huge.length)
    warn(
      `${huge.length} text(s) longer than ${HUGE_TEXT_CHARS} characters (${fewPaths(huge.map((r) => `${r.origin}: ${r.text.length} chars`))}); ` +
        'they are kept, but the encoder reads only its first tokens (its maxTokens): split long documents if their end matters.',
    );
  let labels: Int32Array | undefined;
  let classes: string[] = [];
  if (labelled) {
    classes = opts.classes ? [...opts.classes] : sortClasses(rows.map((r) => r.label!));
    const index = new Map(classes.map((c, i) => [c, i]));
    labels = Int32Array.from(rows, (r) => {
      const l = index.get(r.label!);
      if (l === undefined)
        throw new Error(`${r.origin}: unknown label "${r.label}"; known classes are ${fewPaths(classes, 10)}: fix the label or train with this class.`);
      return l;
    });
    warnConflicts(rows, warn);
  }
  return { where, texts: rows.map((r) => r.text), labels, classes, origins: rows.map((r) => r.origin) };
}

/** Warns when the same text appears with different labels (the classifier cannot get both right). */
function warnConflicts(rows: RawRow[], warn: WarnFn): void {
  const first = new Map<string, RawRow>();
  const bad: string[] = [];
  for (const r of rows) {
    const f = first.get(r.text);
    if (!f) first.set(r.text, r);
    else if (f.label !== r.label) bad.push(`${r.origin} ("${r.label}") repeats ${f.origin} ("${f.label}")`);
  }
  if (bad.length) warn(`${bad.length} text(s) repeat an earlier text with a different label (${fewPaths(bad, 3)}); fix the labels or remove the repeats.`);
}

/**
 * Warns, with counts and examples, about texts that appear in two of the given sets (e.g. train and val): a
 * repeated text in validation or test inflates its accuracy.
 */
export function textLeakWarnings(sets: { name: string; data: Pick<TextData, 'texts' | 'origins'> }[]): string[] {
  const out: string[] = [];
  for (let a = 0; a < sets.length; a++)
    for (let b = a + 1; b < sets.length; b++) {
      const A = sets[a]!;
      const B = sets[b]!;
      const seen = new Map<string, string>();
      A.data.texts.forEach((t, i) => {
        if (!seen.has(t)) seen.set(t, A.data.origins[i]!);
      });
      const hits: string[] = [];
      B.data.texts.forEach((t, i) => {
        const o = seen.get(t);
        if (o !== undefined) hits.push(`${B.data.origins[i]} = ${o}`);
      });
      if (hits.length)
        out.push(
          `${hits.length} text(s) of ${B.name} also appear in ${A.name} (${fewPaths(hits, 3)}); their ${B.name} score is inflated: remove the repeats from one side.`,
        );
    }
  return out;
}

/**
 * The texts of `graft predict` arguments, in order: a text table (.csv/.tsv/.jsonl; labels, if any, ignored) gives
 * its texts, a `.txt` file its content, a folder its `.txt` files (sorted, recursively through class folders);
 * any other argument is a text itself. Each text comes with its name (file:line, the file, or the text).
 * @throws for an argument that looks like a file name (`notes.txt`) but names no file, and for files that
 *   cannot be read or are not UTF-8.
 */
export async function readTextInputs(
  inputs: readonly string[],
  opts: { textColumn?: string; onWarning?: WarnFn } = {},
): Promise<{ names: string[]; texts: string[] }> {
  const { statSync } = await import('node:fs');
  const names: string[] = [];
  const texts: string[] = [];
  for (const a of inputs) {
    let isDir = false;
    let isFile = false;
    try {
      const st = statSync(a);
      isDir = st.isDirectory();
      isFile = st.isFile();
    } catch {
      if (/^[^\s]+\.(txt|csv|tsv|jsonl|ndjson)$/i.test(a))
        throw new Error(`${resolve(a)} does not exist; check the path (an argument that is not a file is classified as a text itself).`);
    }
    if (isFile && isTextTable(a)) {
      const t = await loadTextData(a, { labelled: false, textColumn: opts.textColumn, onWarning: opts.onWarning });
      names.push(...t.origins);
      texts.push(...t.texts);
    } else if (isFile) {
      names.push(a);
      texts.push(await readUtf8(a));
    } else if (isDir) {
      const walk = async (d: string): Promise<void> => {
        const { entries, leftOut } = await readFolder(d, 'text folder');
        warnLeftOut(opts.onWarning ?? defaultWarn, leftOut);
        for (const e of entries) {
          if (e.kind === 'dir') await walk(e.path);
          else if (e.kind === 'file' && extname(e.name).toLowerCase() === '.txt') {
            names.push(e.path);
            texts.push(await readUtf8(e.path));
          }
        }
      };
      const before = texts.length;
      await walk(a);
      if (texts.length === before) (opts.onWarning ?? defaultWarn)(`folder ${a} holds no .txt files at any depth.`);
    } else {
      names.push(a);
      texts.push(a);
    }
  }
  return { names, texts };
}
