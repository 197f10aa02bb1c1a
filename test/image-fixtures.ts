/** Small labelled image folders for tests: one sub-folder per colour, PNGs of that colour plus seeded noise. */
import fs from 'node:fs';
import path from 'node:path';
import sharp from 'sharp';

/** Colour name → RGB, in the order the classes are written. */
export type Colours = [string, number[]][];

/**
 * Writes `perClass` PNGs of `size`×`size` pixels into `root/<colour>/<i>.png`: the colour plus uniform noise of
 * ±`noise`/2, drawn from a seeded linear congruential generator (so every run writes the same bytes).
 */
export async function writeColourImages(root: string, o: { colours: Colours; perClass: number; size: number; seed: number; noise?: number }): Promise<void> {
  let s = o.seed;
  const rnd = () => (s = (s * 1103515245 + 12345) % 2147483648) / 2147483648;
  const noise = o.noise ?? 120;
  for (const [c, rgb] of o.colours) {
    fs.mkdirSync(path.join(root, c), { recursive: true });
    for (let i = 0; i < o.perClass; i++) {
      const px = Buffer.alloc(o.size * o.size * 3);
      for (let p = 0; p < px.length; p++) px[p] = Math.max(0, Math.min(255, rgb[p % 3]! + (rnd() - 0.5) * noise));
      await sharp(px, { raw: { width: o.size, height: o.size, channels: 3 } })
        .png()
        .toFile(path.join(root, c, `${i}.png`));
    }
  }
}
