/** Small CNNs for 28×28 inputs: graft's `smallCNN` (backbone + head) and a LeNet-5. */
import { type Sequential, sequential } from '../container.js';
import { flatten, maxPool2d, relu } from '../functional.js';
import { batchNorm1d, batchNorm2d, conv2d, linear } from '../layers.js';

/** Options of {@link smallCNN}. */
export interface SmallCnnOptions {
  /** Number of classes (default 10). */
  classes?: number;
  /** Width: c1 = width, c2 = 2·width, feat = 4·width (explicit c1/c2/feat win). Default 32, the PyTorch reference's. */
  width?: number;
  /** Channels of the first conv (default `width`). */
  c1?: number;
  /** Channels of the second conv (default 64). */
  c2?: number;
  /** Feature size of the backbone output (default 128). */
  feat?: number;
  /** Input channels (default 1). */
  inChannels?: number;
  /** Input height/width (default 28); must be a multiple of 4. */
  imageSize?: number;
}

/**
 * The PyTorch reference
 * ```py
 * backbone = nn.Sequential(Conv2d(1,c1,3,padding=1), BatchNorm2d(c1), ReLU(), MaxPool2d(2),
 *                          Conv2d(c1,c2,3,padding=1), BatchNorm2d(c2), ReLU(), MaxPool2d(2),
 *                          Flatten(), Linear(c2*7*7, feat), BatchNorm1d(feat), ReLU())
 * head = nn.Linear(feat, classes)
 * ```
 * as `Sequential({ backbone, head })`: parameters "backbone.0.weight" … "backbone.10.running_var", "head.weight".
 */
export function smallCNN(opts: SmallCnnOptions = {}): Sequential {
  const w = opts.width ?? 32;
  const { classes = 10, c1 = w, c2 = 2 * w, feat = 4 * w, inChannels = 1, imageSize = 28 } = opts;
  if (imageSize % 4) throw new Error(`smallCNN: imageSize ${imageSize} is not a multiple of 4 (two 2×2 max-pools); use e.g. 28 or 32.`);
  const s = imageSize / 4;
  const backbone = sequential(
    conv2d(inChannels, c1, 3, { padding: 1 }),
    batchNorm2d(c1),
    relu(),
    maxPool2d(2),
    conv2d(c1, c2, 3, { padding: 1 }),
    batchNorm2d(c2),
    relu(),
    maxPool2d(2),
    flatten(),
    linear(c2 * s * s, feat),
    batchNorm1d(feat),
    relu(),
  );
  const net = sequential({ backbone, head: linear(feat, classes) });
  net.defaultInputShape = ['N', inChannels, imageSize, imageSize];
  return net;
}

/** Options of {@link lenet5}. */
export interface LeNetOptions {
  classes?: number;
  inChannels?: number;
}

/**
 * LeNet-5 for MNIST (28×28, ReLU + max-pool variant):
 * features = Conv2d(1,6,5,padding=2)-ReLU-MaxPool2d(2)-Conv2d(6,16,5)-ReLU-MaxPool2d(2),
 * classifier = Flatten-Linear(400,120)-ReLU-Linear(120,84)-ReLU-Linear(84,classes). 61,706 parameters for 10 classes.
 */
export function lenet5(opts: LeNetOptions = {}): Sequential {
  const { classes = 10, inChannels = 1 } = opts;
  const features = sequential(conv2d(inChannels, 6, 5, { padding: 2 }), relu(), maxPool2d(2), conv2d(6, 16, 5), relu(), maxPool2d(2));
  const classifier = sequential(flatten(), linear(16 * 5 * 5, 120), relu(), linear(120, 84), relu(), linear(84, classes));
  const net = sequential({ features, classifier });
  net.defaultInputShape = ['N', inChannels, 28, 28];
  return net;
}

/** Alias of {@link lenet5}. */
export const lenet = lenet5;
