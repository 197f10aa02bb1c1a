/** Small JPEG thumbnails as inline data URIs, so a report with example images stays one offline file. */

/**
 * A thumbnail of `file` at most `size` pixels on its longer side, as a `data:image/jpeg;base64,…` URI.
 * @returns undefined when the file cannot be read or decoded (the report then lists the file name only).
 */
export async function thumbnailDataUri(file: string, size = 72): Promise<string | undefined> {
  const { default: sharp } = await import('sharp');
  try {
    const buf = await sharp(file, { limitInputPixels: 100e6 })
      .rotate()
      .resize(size, size, { fit: 'inside' })
      .flatten({ background: '#ffffff' })
      .jpeg({ quality: 70 })
      .toBuffer();
    return `data:image/jpeg;base64,${buf.toString('base64')}`;
  } catch {
    return undefined;
  }
}

/** One confusion cell's misclassified images (indices into the report's confusion labels). */
export interface MisclassifiedCell {
  truth: number;
  predicted: number;
  images: { file: string; p: number; src?: string }[];
}

/**
 * The misclassified images of every off-diagonal confusion cell, with thumbnails (at most `perCell` per cell,
 * the most confident mistakes first, and `total` in all).
 * @param rows per image: its file, true and predicted index into the confusion labels (-1: none), and confidence.
 */
export async function misclassifiedCells(
  rows: readonly { file: string; truth: number; predicted: number; p: number }[],
  opts: { perCell?: number; total?: number; size?: number } = {},
): Promise<MisclassifiedCell[]> {
  const cells = new Map<string, MisclassifiedCell>();
  for (const r of rows) {
    if (r.predicted < 0 || r.predicted === r.truth || r.truth < 0) continue;
    const key = `${r.truth}-${r.predicted}`;
    let c = cells.get(key);
    if (!c) cells.set(key, (c = { truth: r.truth, predicted: r.predicted, images: [] }));
    c.images.push({ file: r.file, p: r.p });
  }
  let budget = opts.total ?? 400;
  const out = [...cells.values()].sort((a, b) => a.truth - b.truth || a.predicted - b.predicted);
  for (const c of out) {
    c.images.sort((a, b) => b.p - a.p);
    c.images = c.images.slice(0, opts.perCell ?? 12);
    for (const im of c.images) if (budget-- > 0) im.src = await thumbnailDataUri(im.file, opts.size);
  }
  return out;
}
