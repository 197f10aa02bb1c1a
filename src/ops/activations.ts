/** Pointwise activations: Relu, LeakyRelu, Clip (ReLU6), Sigmoid, Tanh, HardSigmoid, HardSwish, Erf, Gelu, Softplus. */
import { defineOp } from './registry.js';
import { sameAsInput } from './shape-utils.js';

defineOp('Relu', {
  infer: sameAsInput(),
  // dy * (y > 0)
  grad: (e, n, [dy]) => [e.op('Where', [e.op('Greater', [n.outputs[0]!, e.scalar(0)]), dy!, e.scalar(0)])],
});
