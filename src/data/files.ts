/**
 * File-system helpers shared by the folder and manifest datasets: which files count as images and
 * a recursive, sorted listing with clear errors.
 */

import type { Dirent } from 'node:fs';
import { readdir, realpath, stat } from 'node:fs/promises';
import { extname, join } from 'node:path';

/** File extensions (lower case, with dot) that graft decodes as images. */
export const IMAGE_EXTENSIONS: readonly string[] = ['.jpg', '.jpeg', '.png', '.webp', '.gif', '.tif', '.tiff', '.avif'];

/** Whether a file name has an image extension (case-insensitive). */
export function isImageFile(name: string): boolean {
  return IMAGE_EXTENSIONS.includes(extname(name).toLowerCase());
}

/** Receives warnings (skipped files and the like); defaults to `console.warn`. */
export type WarnFn = (message: string) => void;

/** Default warning sink. */
export const defaultWarn: WarnFn = (m) => console.warn(`warning: ${m}`);

/** Error for a folder that cannot be listed: names it and says how to fix it. */
function readDirError(dir: string, what: string, e: unknown): Error {
  const err = e as NodeJS.ErrnoException;
  const fix =
    err.code === 'ENOENT'
      ? 'check the path'
      : err.code === 'ENOTDIR'
        ? 'pass a folder, not a file'
        : err.code === 'EACCES' || err.code === 'EPERM'
          ? 'fix its permissions (e.g. chmod u+rx)'
          : 'check that it is a readable folder';
  return new Error(`Cannot read ${what} ${dir} (${err.code ?? err.message}); ${fix}.`);
}

/**
 * Lists a folder, throwing an error that names it and says how to fix it when it cannot be read.
 */
export async function readDirChecked(dir: string, what = 'folder'): Promise<Dirent[]> {
  try {
    return await readdir(dir, { withFileTypes: true });
  } catch (e) {
    throw readDirError(dir, what, e);
  }
}

/** A file name as text: its bytes when they are UTF-8, else undefined (Linux names are bytes; Node paths are UTF-8 strings). */
function utf8Name(raw: Buffer): string | undefined {
  const s = raw.toString('utf8');
  return Buffer.from(s, 'utf8').equals(raw) ? s : undefined;
}

/** A byte name for messages: printable ASCII as is, every other byte as \xHH. */
export function escapeNameBytes(raw: Buffer): string {
  let s = '';
  for (const b of raw) s += b >= 0x20 && b < 0x7f && b !== 0x5c ? String.fromCharCode(b) : `\\x${b.toString(16).padStart(2, '0')}`;
  return s;
}

/** One entry of {@link readFolder}: symbolic links resolved to what they point at. */
export interface FolderEntry {
  name: string;
  path: string;
  kind: 'dir' | 'file' | 'other';
  /** Whether the entry is a symbolic link (its kind is its target's). */
  link: boolean;
}

/** Result of {@link readFolder}. */
export interface FolderListing {
  /** Entries sorted by name; hidden ones (starting with '.') are left out silently. */
  entries: FolderEntry[];
  /** Entries that cannot be used, each as "path (why; how to fix)": names that are not UTF-8, broken links. */
  leftOut: string[];
}

/**
 * Lists a folder like torchvision does: symbolic links count as what they point at (`stat`, not `lstat`).
 * @throws naming the folder when it cannot be read.
 */
export async function readFolder(dir: string, what = 'folder'): Promise<FolderListing> {
  let raw: Dirent<Buffer>[];
  try {
    raw = await readdir(dir, { withFileTypes: true, encoding: 'buffer' });
  } catch (e) {
    throw readDirError(dir, what, e);
  }
  const entries: FolderEntry[] = [];
  const leftOut: string[] = [];
  for (const e of raw) {
    if (e.name[0] === 0x2e) continue; // '.': hidden
    const name = utf8Name(e.name);
    if (name === undefined) {
      leftOut.push(`${join(dir, escapeNameBytes(e.name))} (the name is not valid UTF-8, which graft cannot open; rename it, e.g. with convmv)`);
      continue;
    }
    const p = join(dir, name);
    let kind: FolderEntry['kind'] = e.isDirectory() ? 'dir' : e.isFile() ? 'file' : 'other';
    if (e.isSymbolicLink()) {
      try {
        const st = await stat(p);
        kind = st.isDirectory() ? 'dir' : st.isFile() ? 'file' : 'other';
      } catch (err) {
        leftOut.push(`${p} (a symbolic link to nothing readable: ${(err as NodeJS.ErrnoException).code}; fix or remove the link)`);
        continue;
      }
    }
    entries.push({ name, path: p, kind, link: e.isSymbolicLink() });
  }
  entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  return { entries, leftOut };
}

/** Result of {@link listImages}. */
export interface ImageListing {
  /** Absolute or root-joined paths of image files, sorted by path. */
  images: string[];
  /** Files skipped because their extension is not an image extension (hidden files are not listed). */
  skipped: string[];
  /** Files and folders left out for another reason, each as "path (why; how to fix)": see {@link readFolder}, link loops. */
  leftOut: string[];
}

/**
 * Lists the image files under `dir`, recursively. Symbolic links to files and folders are followed (like
 * torchvision's ImageFolder); a link back to a folder being walked (a loop) is left out. Hidden files and
 * folders (starting with '.') are ignored silently.
 */
export async function listImages(dir: string, what = 'folder'): Promise<ImageListing> {
  const images: string[] = [];
  const skipped: string[] = [];
  const leftOut: string[] = [];
  const walk = async (d: string, ancestors: readonly string[]): Promise<void> => {
    const listing = await readFolder(d, what);
    leftOut.push(...listing.leftOut);
    for (const e of listing.entries) {
      if (e.kind === 'dir') {
        const real = e.link ? await realpath(e.path) : join(ancestors[ancestors.length - 1]!, e.name);
        if (ancestors.includes(real)) leftOut.push(`${e.path} (a symbolic link loop back to ${real}; not followed)`);
        else await walk(e.path, [...ancestors, real]);
      } else if (e.kind === 'file') (isImageFile(e.name) ? images : skipped).push(e.path);
    }
  };
  let root: string;
  try {
    root = await realpath(dir);
  } catch (e) {
    throw readDirError(dir, what, e);
  }
  await walk(dir, [root]);
  return { images, skipped, leftOut };
}

/** Formats a list of paths for a message: the first few, then a count. */
export function fewPaths(paths: readonly string[], max = 5): string {
  const head = paths.slice(0, max).join(', ');
  return paths.length > max ? `${head} and ${paths.length - max} more` : head;
}

/** One warning for the files and folders a listing left out (names that are not UTF-8, broken links, loops). */
export function warnLeftOut(warn: WarnFn, leftOut: readonly string[]): void {
  if (leftOut.length) warn(`leaving out ${leftOut.length} file(s) or folder(s): ${fewPaths(leftOut)}.`);
}
