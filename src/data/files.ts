/**
 * File-system helpers shared by the folder and manifest datasets: which files count as images and
 * a recursive, sorted listing with clear errors.
 */

import type { Dirent } from 'node:fs';
import { readdir } from 'node:fs/promises';
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

/**
 * Lists a folder, throwing an error that names it and says how to fix it when it cannot be read.
 */
export async function readDirChecked(dir: string, what = 'folder'): Promise<Dirent[]> {
  try {
    return await readdir(dir, { withFileTypes: true });
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    const fix =
      err.code === 'ENOENT'
        ? 'check the path'
        : err.code === 'ENOTDIR'
          ? 'pass a folder, not a file'
          : err.code === 'EACCES' || err.code === 'EPERM'
            ? 'fix its permissions (e.g. chmod u+rx)'
            : 'check that it is a readable folder';
    throw new Error(`Cannot read ${what} ${dir} (${err.code ?? err.message}); ${fix}.`);
  }
}

/** Result of {@link listImages}. */
export interface ImageListing {
  /** Absolute or root-joined paths of image files, sorted by path. */
  images: string[];
  /** Files skipped because their extension is not an image extension (hidden files are not listed). */
  skipped: string[];
}

/**
 * Lists the image files under `dir`, recursively (symbolic links to files are followed, links to folders
 * are not, to avoid cycles). Hidden files and folders (starting with '.') are ignored silently.
 */
export async function listImages(dir: string, what = 'folder'): Promise<ImageListing> {
  const images: string[] = [];
  const skipped: string[] = [];
  const walk = async (d: string): Promise<void> => {
    const entries = await readDirChecked(d, what);
    entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    for (const e of entries) {
      if (e.name.startsWith('.')) continue;
      const p = join(d, e.name);
      if (e.isDirectory()) await walk(p);
      else if (e.isFile() || e.isSymbolicLink()) (isImageFile(e.name) ? images : skipped).push(p);
    }
  };
  await walk(dir);
  return { images, skipped };
}

/** Formats a list of paths for a message: the first few, then a count. */
export function fewPaths(paths: readonly string[], max = 5): string {
  const head = paths.slice(0, max).join(', ');
  return paths.length > max ? `${head} and ${paths.length - max} more` : head;
}
