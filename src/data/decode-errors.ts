/**
 * What went wrong decoding one image, in graft's own words. libvips keeps one error buffer for the whole
 * process, so the text sharp reports for a failed decode can hold another file's error (or be just "Unknown
 * error" when another thread emptied the buffer first). Messages are therefore built only from facts about
 * this file: its header (format, size) as sharp read it, and sharp's own input checks.
 */

/** A reason in graft's own words, about one file only (used verbatim). */
export class DecodeProblem extends Error {
  override name = 'DecodeProblem';
}

/** A file that could not be decoded. `file` names it; `reason` says what is wrong, the message also how to fix it. */
export class ImageDecodeError extends Error {
  /** What is wrong with the file, without the file name or the fix. */
  readonly reason: string;
  constructor(
    readonly file: string,
    cause: unknown,
  ) {
    const reason = cause instanceof DecodeProblem ? cause.message : firstLine(cause);
    super(`Cannot decode image ${file}: ${reason}. Re-encode or remove the file (or run without --strict to skip unreadable images with a warning).`);
    this.name = 'ImageDecodeError';
    this.reason = reason;
  }
}

/** What sharp's header read (metadata) says about a file. */
export interface HeaderFacts {
  format?: string;
  compression?: string;
  width?: number;
  height?: number;
}

const FORMAT_NAMES: Record<string, string> = { jpeg: 'JPEG', png: 'PNG', webp: 'WebP', gif: 'GIF', tiff: 'TIFF', svg: 'SVG' };

/** "JPEG", "PNG", "AVIF", … for a sharp format id. */
export function formatName(h: HeaderFacts): string {
  if (h.format === 'heif') return h.compression === 'av1' ? 'AVIF' : 'HEIF';
  return (h.format && FORMAT_NAMES[h.format]) ?? (h.format ? h.format.toUpperCase() : 'image');
}

/** The first line of an error from another decoder (a plug-in decoder's own message). */
function firstLine(e: unknown): string {
  const msg = e instanceof Error ? e.message : String(e);
  return (
    msg
      .split(/\r?\n/)
      .find((l) => l.trim())
      ?.trim() ?? 'unknown error'
  );
}

/** Why sharp could not read a file's header (sharp's own input checks are per call; libvips text is not trusted). */
export function headerFailure(e: unknown): DecodeProblem {
  if (e instanceof DecodeProblem) return e;
  const msg = e instanceof Error ? e.message : String(e);
  if (/unsupported image format/i.test(msg)) return new DecodeProblem('it is not an image in a format graft reads (JPEG, PNG, WebP, GIF, TIFF, AVIF)');
  if (/Input file is missing/i.test(msg)) return new DecodeProblem('the file does not exist (it was moved or deleted)');
  if (/empty/i.test(msg)) return new DecodeProblem('the file is empty');
  return new DecodeProblem("it is corrupt or not an image (its header can't be read)");
}

/** Why a file whose header was read failed to decode. */
export function decodeFailure(h: HeaderFacts, e: unknown): DecodeProblem {
  if (e instanceof DecodeProblem) return e;
  const msg = e instanceof Error ? e.message : String(e);
  if (/out of memory/i.test(msg))
    return new DecodeProblem(`the decoder ran out of memory on this ${h.width}×${h.height} image; lower GRAFT_DECODE_MEMORY_MB or decode fewer files at once`);
  return new DecodeProblem(`the ${formatName(h)} is truncated or corrupt (its header says ${h.width}×${h.height} pixels, but the image data cannot be read)`);
}
