/** A Conv training graph for the NCHWc rewrite tests (test/runtime/nchwc*.test.ts). */
import { backward } from '../../src/autodiff/backward.js';
import { Emitter } from '../../src/ir/emit.js';
import { type AttrValue, Graph } from '../../src/ir/graph.js';
import { DEFAULT_OPSET, Model } from '../../src/ir/model.js';

/**
 * y = Conv(x, w, b) and z = Conv(x, v) (a second dense Conv of the same input, as a ResNet block's downsample) and
 * the gradients of Σ y·r + Σ z·q with respect to x, w, v and b, with a batch known only at run time.
 */
export function convStep(x: number[], w: number[], attrs: Record<string, AttrValue>, v?: number[]): Model {
  const g = new Graph();
  g.inputs.push(
    { name: 'x', dtype: 'float32', shape: ['N', ...x.slice(1)] },
    { name: 'w', dtype: 'float32', shape: w },
    { name: 'b', dtype: 'float32', shape: [w[0]!] },
    { name: 'r', dtype: 'float32', shape: null as never },
  );
  const e = new Emitter(g, DEFAULT_OPSET);
  const y = e.op('Conv', ['x', 'w', 'b'], attrs);
  g.inputs[3]!.shape = e.shape(y)!;
  let loss = e.reduceSum(e.mul(y, 'r'), 'all', false);
  const wrt = ['x', 'w', 'b'];
  if (v) {
    g.inputs.push({ name: 'v', dtype: 'float32', shape: v }, { name: 'q', dtype: 'float32', shape: null as never });
    const z = e.op('Conv', ['x', 'v'], { strides: [2, 2], pads: [1, 1, 1, 1] });
    g.inputs[5]!.shape = e.shape(z)!;
    loss = e.add(loss, e.reduceSum(e.mul(z, 'q'), 'all', false));
    wrt.push('v');
  }
  const { grads } = backward(g, DEFAULT_OPSET, loss, wrt);
  g.outputs = [y, ...wrt.map((k) => grads.get(k)!)].map((name) => ({ name, dtype: 'float32' }));
  return new Model(g, DEFAULT_OPSET);
}
