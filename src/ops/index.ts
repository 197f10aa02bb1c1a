/** Loads every op definition into the registry. Import this once before building or differentiating graphs. */
import './arith.js';
import './activations.js';
import './matmul.js';
import './shape-ops.js';
import './reduce.js';
import './softmax.js';

export { defineOp, differentiableOps, opDef, registeredOps } from './registry.js';
