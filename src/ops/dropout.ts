/**
 * Dropout (opset ≥ 12 form: inputs data, ratio?, training_mode?; outputs output, mask?).
 * The gradient rule covers the inference form only (identity). Training-mode dropout is rewritten by
 * `toTrainingGraph` (src/step/mode.ts) into a seeded, reproducible mask built from standard ops.
 * Also supplies shape inference for Mod (used by that rewrite).
 */

import type { Node, ValueInfo } from '../ir/graph.js';
import { type InferContext, OpFamily } from '../ir/op-registry.js';
import { broadcastAll, desc } from '../ir/shape-utils.js';

/** The dropout ops, installed into the op table by registerStandardOps() (src/ops/index.ts). */
export const dropoutOps = new OpFamily('dropout');
const defineOp = dropoutOps.define;

/**
 * Whether a Dropout node drops at run time: `training_mode` input true (a constant), or unknowable
 * (a non-constant input) — `undefined` in that case.
 */
export function dropoutIsTraining(n: Node, ctx: InferContext): boolean | undefined {
  const tm = n.inputs[2];
  if (!tm) return false;
  const t = ctx.constant(tm);
  if (!t) return undefined;
  return t.toNumbers()[0] !== 0;
}

defineOp('Dropout', {
  infer: (_n, ins) => {
    const x = ins[0];
    return [
      { dtype: x?.dtype ?? 'float32', shape: x?.shape },
      { dtype: 'bool', shape: x?.shape },
    ];
  },
  nonDifferentiableOutputs: [1],
  grad: (e, n, [dy], needs) => {
    const training = dropoutIsTraining(n, e);
    if (training !== false)
      throw new Error(
        `${desc(n)}: ${training ? 'training_mode is true' : `training_mode comes from the non-constant value "${n.inputs[2]}"`}, so this Dropout ` +
          'draws a random mask that graft cannot differentiate through. Call toTrainingGraph(graph, opset, { trainBN, dropoutSeed }) ' +
          'from src/step/mode.ts first: it replaces Dropout with a seeded mask built from standard ops (or with Identity).',
      );
    return [needs[0] ? dy : null, null, null];
  },
});

function broadcastInfer(n: Node, ins: (ValueInfo | undefined)[]) {
  return [{ dtype: ins[0]?.dtype ?? 'int64', shape: broadcastAll(ins, desc(n)) }];
}

// Integer remainder, used by the dropout rewrite's hash.
defineOp('Mod', { infer: broadcastInfer });
