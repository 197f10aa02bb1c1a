/** Image folders of Fashion-MNIST PNGs for the benches that train from a folder (bench/default-recipe.ts, bench/memory.ts). */
import fs from 'node:fs';
import path from 'node:path';
import sharp from 'sharp';
import type { loadFashionMnist } from '../src/data/idx.js';

type Split = Awaited<ReturnType<typeof loadFashionMnist>>['train'];

/** Writes the first `per` images of each (label, folder name) class of `split` as 28×28 PNGs under `dir/<name>/`. */
export async function writeClassFolders(split: Split, dir: string, classes: Iterable<readonly [number, string]>, per: number): Promise<void> {
  for (const [label, name] of classes) {
    fs.mkdirSync(path.join(dir, name), { recursive: true });
    let k = 0;
    for (let i = 0; i < split.n && k < per; i++) {
      if (split.y[i] !== label) continue;
      const px = Uint8Array.from(split.x.subarray(i * 784, (i + 1) * 784), (v) => Math.round(v * 255));
      await sharp(px, { raw: { width: 28, height: 28, channels: 1 } })
        .png()
        .toFile(path.join(dir, name, `${String(i).padStart(5, '0')}.png`));
      k++;
    }
  }
}
