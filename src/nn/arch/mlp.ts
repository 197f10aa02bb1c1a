/** `mlp(...)`: a multilayer perceptron as an nn.Sequential (the usual classifier head). */
import { Sequential } from '../container.js';
import { dropout, gelu, relu, tanh } from '../functional.js';
import { batchNorm1d, linear } from '../layers.js';
import type { Module } from '../module.js';

/** Options of {@link mlp}. */
export interface MlpOptions {
  /** Hidden activation (default 'relu'). */
  activation?: 'relu' | 'gelu' | 'tanh';
  /** Dropout probability after each hidden activation (default 0: no Dropout module). */
  dropout?: number;
  /** BatchNorm1d after each hidden Linear, before the activation (default false). */
  batchNorm?: boolean;
  /** Input features. Omit to take them from the incoming value (e.g. the cut in replaceHead). */
  inFeatures?: number;
}

/**
 * Linear → [BatchNorm1d] → act → [Dropout] per hidden size, then a final Linear to `out`, as one
 * Sequential with PyTorch indices: `mlp([256, 256], 10, { inFeatures: 512 })` is
 * `nn.Sequential(Linear(512,256), ReLU(), Linear(256,256), ReLU(), Linear(256,10))` ("0.weight", "2.weight", "4.weight").
 */
export function mlp(hidden: number[], out: number, opts: MlpOptions = {}): Sequential {
  const act = opts.activation ?? 'relu';
  const makeAct: Record<string, () => Module> = { relu, gelu: () => gelu(), tanh };
  if (!makeAct[act]) throw new Error(`mlp: unknown activation "${act}"; use 'relu', 'gelu' or 'tanh'.`);
  const p = opts.dropout ?? 0;
  const layers: Module[] = [];
  let prev: number | null = opts.inFeatures ?? null;
  for (const h of hidden) {
    layers.push(linear(prev, h));
    if (opts.batchNorm) layers.push(batchNorm1d(h));
    layers.push(makeAct[act]!());
    if (p > 0) layers.push(dropout(p));
    prev = h;
  }
  layers.push(linear(prev, out));
  const net = new Sequential(layers);
  if (opts.inFeatures) net.defaultInputShape = ['N', opts.inFeatures];
  return net;
}
