/**
 * graft's PyTorch-like model builder: modules that emit ONNX forward graphs with PyTorch state_dict
 * parameter names and PyTorch's default initialization.
 *
 * ```ts
 * const net = sequential(conv2d(1, 32, 3, { padding: 1 }), batchNorm2d(32), relu(), maxPool2d(2), flatten(), linear(6272, 10));
 * const model = net.build({ inputShape: ['N', 1, 28, 28], seed: 0, inputName: 'input', outputName: 'logits' });
 * ```
 */

export { bufferNames, paramCount, paramNames, paramPaths } from '../ir/params.js';
export { featureValue, findCut, setOutput } from '../ir/surgery.js';
export { type MlpOptions, mlp } from './arch/mlp.js';
export { BasicBlock, ResNet, type ResNetOptions, resnet18, resnet34 } from './arch/resnet.js';
export { type LeNetOptions, lenet, lenet5, type SmallCnnOptions, smallCNN } from './arch/small.js';
export { Sequential, sequential } from './container.js';
export {
  adaptiveAvgPool2d,
  avgPool2d,
  dropout,
  flatten,
  gelu,
  globalAvgPool,
  identity,
  Lambda,
  leakyRelu,
  maxPool2d,
  type PoolOptions,
  relu,
  relu6,
  sigmoid,
  tanh,
} from './functional.js';
export * as init from './init.js';
export {
  BatchNorm,
  type BatchNormOptions,
  batchNorm1d,
  batchNorm2d,
  Conv2d,
  type Conv2dOptions,
  conv2d,
  Linear,
  type LinearOptions,
  linear,
} from './layers.js';
export { addParam, type BuildOptions, join, Module, scoped } from './module.js';
export { type ReplaceHeadOptions, replaceHead } from './replace-head.js';
