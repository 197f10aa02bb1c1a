/** Loads every op definition into the registry. Import this once before building or differentiating graphs. */
import './arith.js';
import './activations.js';
import './matmul.js';
import './shape-ops.js';
import './tensor-ops.js';
import './reduce.js';
import './softmax.js';
import './conv.js';
import './pool.js';
import './norm.js';
import './bn-train.js';
import './dropout.js';
import './grl.js';

export { defineOp, differentiableOps, opDef, registeredOps } from './registry.js';
