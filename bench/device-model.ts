/** A one-node model (Y = X · W) for bench/device-check.sh's first question: does a WebGPU session open at all? */
import { Graph } from '../src/ir/graph.js';
import { Model } from '../src/ir/model.js';
import { Tensor } from '../src/tensor.js';

export function buildModelForDeviceCheck(): Model {
  const g = new Graph();
  g.name = 'device-check';
  g.inputs.push({ name: 'x', dtype: 'float32', shape: ['N', 4] });
  g.outputs.push({ name: 'y', dtype: 'float32', shape: ['N', 2] });
  g.addInitializer('w', Tensor.f32([4, 2], [1, 0, 0, 1, 1, 0, 0, 1]));
  g.addNode('MatMul', ['x', 'w'], ['y'], {}, 'matmul');
  return new Model(g, 17);
}
