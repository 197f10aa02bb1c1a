/** torchvision-compatible ResNet-18/34 (BasicBlock) with the same module tree and state_dict names. */
import type { Emitter } from '../../ir/emit.js';
import type { Rng } from '../../tensor.js';
import { Sequential, sequential } from '../container.js';
import { adaptiveAvgPool2d, flatten, maxPool2d, relu } from '../functional.js';
import { BatchNorm, batchNorm2d, Conv2d, linear } from '../layers.js';
import { join, Module, scoped } from '../module.js';

const conv3x3 = (cin: number, cout: number, stride = 1) => new Conv2d(cin, cout, 3, { stride, padding: 1, bias: false, init: 'kaimingNormalFanOut' });
const conv1x1 = (cin: number, cout: number, stride = 1) => new Conv2d(cin, cout, 1, { stride, bias: false, init: 'kaimingNormalFanOut' });

/**
 * torchvision's BasicBlock: conv1-bn1-relu-conv2-bn2, plus the identity (or `downsample` =
 * Sequential(conv1x1, BatchNorm2d) when the stride or width changes), then ReLU.
 */
export class BasicBlock extends Module {
  readonly kind = 'BasicBlock';
  private readonly kids: [string, Module][];
  constructor(inplanes: number, planes: number, stride = 1) {
    super();
    this.kids = [
      ['conv1', conv3x3(inplanes, planes, stride)],
      ['bn1', batchNorm2d(planes)],
      ['relu', relu()],
      ['conv2', conv3x3(planes, planes)],
      ['bn2', batchNorm2d(planes)],
    ];
    if (stride !== 1 || inplanes !== planes) this.kids.push(['downsample', sequential(conv1x1(inplanes, planes, stride), batchNorm2d(planes))]);
  }
  override children(): [string, Module][] {
    return this.kids;
  }
  emit(e: Emitter, x: string, prefix: string, rng: Rng): string {
    const k = Object.fromEntries(this.kids);
    const run = (name: string, v: string) => k[name]!.emit(e, v, join(prefix, name), rng);
    let out = run('bn1', run('conv1', x));
    out = run('relu', out);
    out = run('bn2', run('conv2', out));
    const identity = k.downsample ? run('downsample', x) : x;
    return scoped(e, prefix, () => e.op('Relu', [e.add(out, identity)]));
  }
}

/** Options of {@link resnet18} / {@link resnet34}. */
export interface ResNetOptions {
  /** Classes of the `fc` layer (default 1000). */
  classes?: number;
  /** Width of the stem and layer1 (default 64); layers 2–4 use 2×, 4×, 8×. */
  width?: number;
  /** Input channels (default 3). */
  inChannels?: number;
}

/** torchvision's ResNet with BasicBlocks; `blocks` per stage, e.g. [2, 2, 2, 2] for ResNet-18. */
export class ResNet extends Sequential {
  override readonly kind = 'ResNet';
  constructor(blocks: [number, number, number, number], opts: ResNetOptions = {}) {
    const { classes = 1000, width = 64, inChannels = 3 } = opts;
    const kids: [string, Module][] = [
      ['conv1', new Conv2d(inChannels, width, 7, { stride: 2, padding: 3, bias: false, init: 'kaimingNormalFanOut' })],
      ['bn1', new BatchNorm(width, 2)],
      ['relu', relu()],
      ['maxpool', maxPool2d(3, { stride: 2, padding: 1 })],
    ];
    let inplanes = width;
    blocks.forEach((n, i) => {
      const planes = width * 2 ** i;
      const stage: Module[] = [];
      for (let b = 0; b < n; b++) {
        stage.push(new BasicBlock(inplanes, planes, b === 0 && i > 0 ? 2 : 1));
        inplanes = planes;
      }
      kids.push([`layer${i + 1}`, new Sequential(stage)]);
    });
    // torch.flatten(x, 1) happens in forward(); a parameter-free child here keeps the names identical.
    kids.push(['avgpool', adaptiveAvgPool2d(1)], ['flatten', flatten()], ['fc', linear(inplanes, classes)]);
    super(kids);
    this.defaultInputShape = ['N', inChannels, 224, 224];
  }
}

/** torchvision `resnet18()`: 11,689,512 parameters for 1000 classes; input ['N', 3, 224, 224] by default. */
export function resnet18(opts: ResNetOptions = {}): ResNet {
  return new ResNet([2, 2, 2, 2], opts);
}

/** torchvision `resnet34()`: 21,797,672 parameters for 1000 classes. */
export function resnet34(opts: ResNetOptions = {}): ResNet {
  return new ResNet([3, 4, 6, 3], opts);
}
