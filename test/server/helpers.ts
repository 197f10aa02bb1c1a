/** Fixtures for the graft serve tests: a tiny colour classifier (saved with its sidecar) and PNGs of each colour. */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import sharp from 'sharp';
import { parsePreprocessConfig } from '../../src/data/preprocess.js';
import { flatten, globalAvgPool, linear, sequential } from '../../src/nn/index.js';
import { loadModel, saveModel } from '../../src/onnx/io.js';
import { Tensor } from '../../src/tensor.js';
import { Network } from '../../src/train/network.js';

/** Class names in the order of the model's outputs. */
export const LABELS = ['red', 'green', 'blue'];
export const COLOURS: Record<string, [number, number, number]> = { red: [220, 30, 20], green: [25, 200, 40], blue: [30, 20, 210] };

/**
 * Saves a classifier that reads the colour off the channel means (logits = gain · mean(R, G, B) per class) to
 * `file` with its model.json (labels, 16×16 stretch preprocessing, optional temperature). `order` permutes the
 * rows, so a second version can answer differently; `batch` fixes the batch dimension.
 */
export function saveColourModel(
  file: string,
  o: { order?: number[]; gain?: number; temperature?: number; batch?: number | string; plain?: boolean } = {},
): void {
  const m = sequential(globalAvgPool(), flatten(), linear(3, 3)).build({ inputShape: [o.batch ?? 'N', 3, 16, 16], seed: 0 });
  const [w, b] = [...m.graph.initializers.keys()].sort((x, y) => y.length - x.length || x.localeCompare(y));
  assert.ok(w?.endsWith('weight') && b?.endsWith('bias'), `parameters ${w}, ${b}`);
  const order = o.order ?? [0, 1, 2];
  const g = o.gain ?? 10;
  const wt = Array.from({ length: 9 }, (_, i) => (order[Math.floor(i / 3)] === i % 3 ? g : 0));
  m.graph.initializers.set(w!, Tensor.f32([3, 3], wt));
  m.graph.initializers.set(b!, Tensor.f32([3], [0, 0, 0]));
  fs.mkdirSync(path.dirname(file), { recursive: true });
  const net = new Network(m, { labels: LABELS, preprocess: parsePreprocessConfig({ size: 16, channels: 3, resize: 'stretch' }), temperature: o.temperature });
  net.save(file);
  if (o.plain) {
    // a model with neither sidecar nor graft metadata: no labels, no preprocessing
    fs.rmSync(file.replace(/\.onnx$/, '.json'));
    const bare = loadModel(file);
    for (const k of Object.keys(bare.metadata)) delete bare.metadata[k];
    saveModel(bare, file);
  }
}

/** A PNG of one colour (with a little per-pixel variation), as bytes. */
export function colourPng(rgb: readonly number[], w = 20, h = 24): Promise<Buffer> {
  const px = Buffer.alloc(w * h * 3);
  for (let i = 0; i < px.length; i++) px[i] = Math.max(0, Math.min(255, rgb[i % 3]! + ((i * 7919) % 31) - 15));
  return sharp(px, { raw: { width: w, height: h, channels: 3 } })
    .png()
    .toBuffer();
}
