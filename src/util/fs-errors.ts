/** Turns Node file-system errors into one-line messages that say what failed, where, and how to fix it. */

/** Node error codes mapped to a plain-language cause and a fix. */
const CAUSES: Record<string, [cause: string, fix: string]> = {
  ENOSPC: ['the disk is full', 'free some disk space or write to another disk'],
  EDQUOT: ['the disk quota is exhausted', 'free some space in your quota or write elsewhere'],
  EFBIG: ['the file is larger than this file system allows', 'write to a file system that supports large files'],
  EACCES: ['permission denied', 'check the permissions of the file and its folder, or choose another path'],
  EPERM: ['the operation is not permitted', 'check the permissions of the file and its folder, or choose another path'],
  EROFS: ['the file system is read-only', 'choose a writable location'],
  ENOENT: ['no such file or folder', 'check the path (does the folder exist?)'],
  ENOTDIR: ['a part of the path is not a folder', 'check the path'],
  EISDIR: ['it is a folder, not a file', 'pass the path of a file inside it'],
  EMFILE: ['too many open files', 'close other programs or raise the limit (ulimit -n)'],
  EIO: ['an I/O error occurred', 'check the disk for hardware problems'],
  ERR_FS_FILE_TOO_LARGE: [
    'it is larger than 2 GiB, too big to read in one piece',
    'keep large weights in a separate external-data file (re-export with external data)',
  ],
};

/** Node's error code of `e` (e.g. "ENOSPC"), if it has one. */
export function errorCode(e: unknown): string | undefined {
  const code = (e as NodeJS.ErrnoException | undefined)?.code;
  return typeof code === 'string' ? code : undefined;
}

/**
 * Formats a file-system failure as "Could not <action> <file>: <cause> (<CODE>). <Fix>."
 * @param action what was attempted, e.g. "write" or "read".
 * @param file the path involved.
 * @param e the caught error.
 * @param extra an optional sentence appended at the end (e.g. "The previous file is unchanged.").
 */
export function describeFsError(action: string, file: string, e: unknown, extra = ''): string {
  const code = errorCode(e);
  const known = code ? CAUSES[code] : undefined;
  const detail = known ? `${known[0]} (${code})` : ((e as Error)?.message ?? String(e));
  const fix = known ? `${known[1][0]!.toUpperCase()}${known[1].slice(1)}.` : 'Check the path, permissions and free disk space.';
  return `Could not ${action} ${file}: ${detail}. ${fix}${extra ? ` ${extra}` : ''}`;
}
