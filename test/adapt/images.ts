/** The image folders of the `graft adapt` CLI tests: tiny grey PNGs whose target domain is a brightness shift. */
import fs from 'node:fs';
import path from 'node:path';
import sharp from 'sharp';

/** 8×8 grey images: class "dark" / "light" (target: a shifted brightness), `n` per class; unlabelled ones flat in `root`. */
export async function brightnessImages(root: string, n: number, shift: number, labelled = true): Promise<void> {
  for (const [k, base] of [
    ['dark', 60],
    ['light', 190],
  ] as const) {
    const dir = labelled ? path.join(root, k) : root;
    fs.mkdirSync(dir, { recursive: true });
    for (let i = 0; i < n; i++) {
      const px = Buffer.alloc(64, Math.min(255, base + shift + ((i * 7) % 20)));
      await sharp(px, { raw: { width: 8, height: 8, channels: 1 } })
        .png()
        .toFile(path.join(dir, `${k}-${i}.png`));
    }
  }
}
