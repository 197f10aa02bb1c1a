/** Fixtures for the web bundle tests: a small model whose probabilities depend on every input pixel, and test images. */
import fs from 'node:fs';
import path from 'node:path';
import sharp from 'sharp';
import { type PreprocessConfigInput, parsePreprocessConfig } from '../../src/data/preprocess.js';
import { conv2d, flatten, linear, relu, sequential } from '../../src/nn/index.js';
import { Tensor } from '../../src/tensor.js';
import { Network } from '../../src/train/network.js';

export const LABELS = ['cat', 'dog', 'fox'];

/**
 * Saves `file` (.onnx + model.json): conv 3→4 (3×3) → relu → flatten → linear to 3 classes, seeded, with a
 * calibration temperature, so a one-level change in any resized pixel moves the probabilities.
 */
export function saveSpatialModel(file: string, pre: PreprocessConfigInput & { size: [number, number] }, temperature = 1.5): void {
  const [h, w] = pre.size;
  const m = sequential(conv2d(3, 4, 3), relu(), flatten(), linear(4 * (h - 2) * (w - 2), 3)).build({ inputShape: ['N', 3, h, w], seed: 3 });
  // larger head weights spread the logits, so the probabilities react to small pixel differences
  for (const [name, t] of m.graph.initializers)
    if (t.dims.length === 2)
      m.graph.initializers.set(
        name,
        Tensor.f32(
          t.dims,
          Array.from(t.data as Float32Array, (v) => v * 30),
        ),
      );
  const net = new Network(m, { labels: LABELS, preprocess: parsePreprocessConfig(pre), temperature });
  net.save(file);
}

/** Seeded noisy gradients: structure a resize has to get right, as a PNG or JPEG of `w × h`. */
export async function writeTestImage(file: string, w: number, h: number, seed: number): Promise<void> {
  let s = seed;
  const px = Buffer.alloc(w * h * 3);
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      for (let c = 0; c < 3; c++) {
        s = (s * 1103515245 + 12345) % 2147483648;
        const base = c === 0 ? (255 * x) / w : c === 1 ? (255 * y) / h : 128 + 100 * Math.sin((x + y + seed) / 3);
        px[(y * w + x) * 3 + c] = Math.max(0, Math.min(255, Math.round(base + ((s >>> 16) % 61) - 30)));
      }
    }
  }
  fs.mkdirSync(path.dirname(file), { recursive: true });
  const img = sharp(px, { raw: { width: w, height: h, channels: 3 } });
  await (file.endsWith('.png') ? img.png() : img.jpeg({ quality: 90 })).toFile(file);
}
