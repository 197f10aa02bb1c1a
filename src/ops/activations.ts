/**
 * Pointwise activations: Relu, LeakyRelu, PRelu, Clip (ReLU6), Sigmoid, Tanh, HardSigmoid, HardSwish,
 * Erf, Gelu (opset ≥ 20), Softplus, Softsign, Elu, Selu. Gradients are built from the saved input or
 * output, whichever is cheaper; masks use strict comparisons so a kink gets the one-sided slope.
 */
import type { Emitter } from '../ir/emit.js';
import { attrFloat, attrString, type Node } from '../ir/graph.js';
import { OpFamily } from '../ir/op-registry.js';
import { desc, sameAsInput } from '../ir/shape-utils.js';
import { dtypeToOnnx } from '../onnx/tensor-proto.js';

/** The activations ops, installed into the op table by registerStandardOps() (src/ops/index.ts). */
export const activationOps = new OpFamily('activations');
const defineOp = activationOps.define;

const SQRT_2_OVER_PI = Math.sqrt(2 / Math.PI);
const INV_SQRT_2 = Math.SQRT1_2;
const INV_SQRT_2PI = 1 / Math.sqrt(2 * Math.PI);
const GELU_TANH_C = 0.044715;

/**
 * `dy` where `cond` holds, `other` (default 0) elsewhere. Without `other` it is dy · cast(cond): onnxruntime's Where
 * runs a generic broadcasting loop at ~2 ns per element, a Cast and a Mul together ~1 ns (ReLU's backward on a
 * 64×32×28×28 activation: 5.7 → 3.8 ms).
 */
function select(e: Emitter, cond: string, dy: string, other?: string): string {
  if (other) return e.op('Where', [cond, dy, other]);
  return e.mul(dy, e.op('Cast', [cond], { to: dtypeToOnnx(e.info(dy)?.dtype ?? 'float32') }));
}
/** 1 - v (float32). */
function oneMinus(e: Emitter, v: string): string {
  return e.sub(e.scalar(1), v);
}

defineOp('Relu', {
  infer: sameAsInput(),
  // dy * (y > 0)
  grad: (e, n, [dy]) => [select(e, e.op('Greater', [n.outputs[0]!, e.scalar(0)]), dy!)],
});

defineOp('LeakyRelu', {
  infer: sameAsInput(),
  // x > 0 ? dy : alpha·dy
  grad: (e, n, [dy]) => {
    const alpha = attrFloat(n, 'alpha', 0.01);
    return [select(e, e.op('Greater', [n.inputs[0]!, e.scalar(0)]), dy!, e.mul(dy!, e.scalar(alpha)))];
  },
});

defineOp('PRelu', {
  infer: (n, ins) => {
    const x = ins[0]?.shape;
    const s = ins[1]?.shape;
    if (x && s && s.length > x.length)
      throw new Error(`${desc(n)}: slope has rank ${s.length} but X has rank ${x.length}; the slope must broadcast to X (e.g. [C,1,1] for NCHW).`);
    return [{ dtype: ins[0]?.dtype ?? 'float32', shape: x }];
  },
  // y = x > 0 ? x : slope·x  →  dx = x > 0 ? dy : slope·dy ; dslope = Σ_broadcast (x > 0 ? 0 : x·dy)
  grad: (e, n, [dy], needs) => {
    const [x, slope] = n.inputs as [string, string];
    const pos = e.op('Greater', [x, e.scalar(0)]);
    return [
      needs[0] ? select(e, pos, dy!, e.mul(dy!, slope)) : null,
      needs[1] ? e.sumToShape(e.op('Where', [pos, e.scalar(0), e.mul(dy!, x)]), slope, n) : null,
    ];
  },
});

/** The min/max bound of a Clip node as a value name (input in opset ≥ 11, attribute in legacy models), or undefined for none. */
function clipBound(e: Emitter, n: Node, i: 1 | 2): string | undefined {
  const input = n.inputs[i];
  if (input) return input;
  const a = n.attrs[i === 1 ? 'min' : 'max'];
  return typeof a === 'number' ? e.scalar(a) : undefined;
}

/**
 * Makes the forward pass compute `mask` (a bool comparison of an activation `y` with its input) as soon as `y` exists,
 * so the backward keeps the 1-byte mask instead of the float input it was compared with (freed in the forward).
 * onnxruntime runs a node only when something needs it, so a mask that only the backward reads would run there, and
 * its float input would stay alive until then (MobileNetV2's ReLU6 inputs: a sixth of a training step's memory).
 * The consumers of `y` read it through `Reshape(y, Shape(mask))` instead: the same buffer (Reshape aliases its input,
 * Shape reads no data), now after the mask. Returns `mask`.
 */
function forwardMask(e: Emitter, y: string, mask: string): string {
  const g = e.graph;
  const consumers = g.nodes.filter((m) => m.inputs.includes(y) && !m.outputs.includes(mask));
  if (consumers.length === 0) return mask;
  const shape = e.op('Shape', [mask]);
  const after = e.op('Reshape', [y, shape]);
  const info = g.info(y);
  if (info) g.valueInfo.set(after, { ...info, name: after });
  for (const m of consumers) m.inputs = m.inputs.map((i) => (i === y ? after : i));
  // keep the node list in topological order (passes such as prune() rely on it): the three nodes right after y's producer
  const moved = g.nodes.filter((m) => m.outputs.some((o) => o === mask || o === shape || o === after));
  const rest = g.nodes.filter((m) => !moved.includes(m));
  const at = rest.findIndex((m) => m.outputs.includes(y));
  rest.splice(at + 1, 0, ...moved);
  g.nodes = rest;
  return mask;
}

defineOp('Clip', {
  infer: sameAsInput(),
  // dx = dy where min ≤ x ≤ max (the clamp convention); dmin / dmax collect dy where x fell below / above.
  grad: (e, n, [dy], needs) => {
    const x = n.inputs[0]!;
    const lo = clipBound(e, n, 1);
    const hi = clipBound(e, n, 2);
    const out: (string | null)[] = [null, null, null];
    if (needs[0]) {
      if (lo && hi) {
        // min ≤ x ≤ max exactly where the output equals the input: one comparison pass instead of three (ReLU6 is
        // on every MobileNet activation)
        out[0] = select(e, forwardMask(e, n.outputs[0]!, e.op('Equal', [n.outputs[0]!, x])), dy!);
      } else if (lo) out[0] = select(e, e.op('GreaterOrEqual', [x, lo]), dy!);
      else if (hi) out[0] = select(e, e.op('LessOrEqual', [x, hi]), dy!);
      else out[0] = dy!;
    }
    if (needs[1] && n.inputs[1]) out[1] = e.sumToShape(select(e, e.op('Less', [x, n.inputs[1]]), dy!), n.inputs[1], n);
    if (needs[2] && n.inputs[2]) out[2] = e.sumToShape(select(e, e.op('Greater', [x, n.inputs[2]]), dy!), n.inputs[2], n);
    return out;
  },
});

defineOp('Sigmoid', {
  infer: sameAsInput(),
  // dy · y · (1 − y)
  grad: (e, n, [dy]) => {
    const y = n.outputs[0]!;
    return [e.mul(dy!, e.mul(y, oneMinus(e, y)))];
  },
});

defineOp('Tanh', {
  infer: sameAsInput(),
  // dy · (1 − y²)
  grad: (e, n, [dy]) => {
    const y = n.outputs[0]!;
    return [e.mul(dy!, oneMinus(e, e.mul(y, y)))];
  },
});

defineOp('HardSigmoid', {
  infer: sameAsInput(),
  // y = clamp(alpha·x + beta, 0, 1)  →  dy · alpha where 0 < y < 1
  grad: (e, n, [dy]) => {
    const y = n.outputs[0]!;
    const alpha = attrFloat(n, 'alpha', 0.2);
    const inside = e.op('And', [e.op('Greater', [y, e.scalar(0)]), e.op('Less', [y, e.scalar(1)])]);
    return [select(e, inside, e.mul(dy!, e.scalar(alpha)))];
  },
});

defineOp('HardSwish', {
  infer: sameAsInput(),
  // y = x · clamp(x/6 + 1/2, 0, 1)  →  0 for x < −3, 1 for x > 3, x/3 + 1/2 between
  grad: (e, n, [dy]) => {
    const x = n.inputs[0]!;
    const mid = e.add(e.div(x, e.scalar(3)), e.scalar(0.5));
    const slope = e.op('Where', [e.op('Less', [x, e.scalar(-3)]), e.scalar(0), e.op('Where', [e.op('Greater', [x, e.scalar(3)]), e.scalar(1), mid])]);
    return [e.mul(dy!, slope)];
  },
});

/** 2/√π · exp(−x²): the derivative of erf. */
function erfPrime(e: Emitter, x: string): string {
  return e.mul(e.scalar(2 / Math.sqrt(Math.PI)), e.op('Exp', [e.neg(e.mul(x, x))]));
}

defineOp('Erf', { infer: sameAsInput(), grad: (e, n, [dy]) => [e.mul(dy!, erfPrime(e, n.inputs[0]!))] });

/** Reads and checks Gelu's `approximate` attribute. */
function geluMode(n: Node): 'none' | 'tanh' {
  const a = attrString(n, 'approximate', 'none');
  if (a !== 'none' && a !== 'tanh') throw new Error(`${desc(n)}: approximate="${a}" is not a Gelu mode; ONNX allows "none" or "tanh".`);
  return a;
}

/** tanh(√(2/π)·(x + 0.044715·x³)), the inner term of the tanh approximation. */
function geluTanhInner(e: Emitter, x: string): string {
  const x3 = e.mul(e.mul(x, x), x);
  return e.op('Tanh', [e.mul(e.scalar(SQRT_2_OVER_PI), e.add(x, e.mul(e.scalar(GELU_TANH_C), x3)))]);
}

/**
 * Emits GELU of `x`: the ONNX Gelu op when the opset has it (≥ 20), otherwise the same function built
 * from Erf / Tanh so it also runs on opsets 13–19. Returns the output name.
 * @param approximate 'none' (exact, erf) or 'tanh'.
 */
export function emitGelu(e: Emitter, x: string, approximate: 'none' | 'tanh' = 'none'): string {
  if (e.opset >= 20) return e.op('Gelu', [x], { approximate });
  const inner = approximate === 'tanh' ? geluTanhInner(e, x) : e.op('Erf', [e.mul(x, e.scalar(INV_SQRT_2))]);
  return e.mul(e.mul(x, e.scalar(0.5)), e.add(inner, e.scalar(1)));
}

defineOp('Gelu', {
  infer: (n, ins, ctx) => {
    geluMode(n);
    if (ctx.opset < 20 && !n.domain)
      throw new Error(
        `${desc(n)}: Gelu is an ONNX op only from opset 20, but the model targets opset ${ctx.opset}. Raise the model opset to 20+, or build GELU with emitGelu() (src/ops/activations.ts), which falls back to Erf.`,
      );
    return sameAsInput()(n, ins);
  },
  grad: (e, n, [dy]) => {
    const x = n.inputs[0]!;
    if (geluMode(n) === 'none') {
      // Φ(x) + x·φ(x), Φ(x) = (1 + erf(x/√2))/2, φ(x) = exp(−x²/2)/√(2π)
      const cdf = e.mul(e.add(e.op('Erf', [e.mul(x, e.scalar(INV_SQRT_2))]), e.scalar(1)), e.scalar(0.5));
      const pdf = e.mul(e.op('Exp', [e.mul(e.mul(x, x), e.scalar(-0.5))]), e.scalar(INV_SQRT_2PI));
      return [e.mul(dy!, e.add(cdf, e.mul(x, pdf)))];
    }
    // y = x/2·(1 + t), t = tanh(u), u = √(2/π)(x + c·x³)  →  (1 + t)/2 + x/2·(1 − t²)·√(2/π)(1 + 3c·x²)
    const t = geluTanhInner(e, x);
    const du = e.mul(e.scalar(SQRT_2_OVER_PI), e.add(e.scalar(1), e.mul(e.scalar(3 * GELU_TANH_C), e.mul(x, x))));
    const a = e.mul(e.add(t, e.scalar(1)), e.scalar(0.5));
    const b = e.mul(e.mul(e.mul(x, e.scalar(0.5)), oneMinus(e, e.mul(t, t))), du);
    return [e.mul(dy!, e.add(a, b))];
  },
});

defineOp('Softplus', {
  infer: sameAsInput(),
  // dy · sigmoid(x)
  grad: (e, n, [dy]) => [e.mul(dy!, e.op('Sigmoid', [n.inputs[0]!]))],
});

defineOp('Softsign', {
  infer: sameAsInput(),
  // dy / (1 + |x|)²
  grad: (e, n, [dy]) => {
    const d = e.add(e.scalar(1), e.op('Abs', [n.inputs[0]!]));
    return [e.div(dy!, e.mul(d, d))];
  },
});

defineOp('Elu', {
  infer: sameAsInput(),
  // x > 0 ? dy : dy·(y + alpha)
  grad: (e, n, [dy]) => {
    const alpha = attrFloat(n, 'alpha', 1);
    const neg = e.mul(dy!, e.add(n.outputs[0]!, e.scalar(alpha)));
    return [select(e, e.op('Greater', [n.inputs[0]!, e.scalar(0)]), dy!, neg)];
  },
});

defineOp('Selu', {
  infer: sameAsInput(),
  // x > 0 ? gamma·dy : dy·(y + gamma·alpha)
  grad: (e, n, [dy]) => {
    const alpha = attrFloat(n, 'alpha', 1.6732632423543772);
    const gamma = attrFloat(n, 'gamma', 1.0507009873554805);
    const neg = e.mul(dy!, e.add(n.outputs[0]!, e.scalar(gamma * alpha)));
    return [select(e, e.op('Greater', [n.inputs[0]!, e.scalar(0)]), e.mul(dy!, e.scalar(gamma)), neg)];
  },
});
