/**
 * graft's standard op table: every family file in src/ops/ collects its definitions in an OpFamily, and
 * {@link registerStandardOps} installs them all into the table in src/ir/op-registry.ts. Importing this
 * module registers nothing by itself; every engine entry point that builds or differentiates graphs calls
 * registerStandardOps() first (it does the work once).
 */
import { registerOps } from '../ir/op-registry.js';
import { activationOps } from './activations.js';
import { arithOps } from './arith.js';
import { bnTrainOps } from './bn-train.js';
import { convOps } from './conv.js';
import { dropoutOps } from './dropout.js';
import { grlOps } from './grl.js';
import { matmulOps } from './matmul.js';
import { normOps } from './norm.js';
import { poolOps } from './pool.js';
import { reduceOps } from './reduce.js';
import { shapeOps } from './shape-ops.js';
import { softmaxOps } from './softmax.js';
import { tensorOps } from './tensor-ops.js';

/** Every standard family, in the order they are installed (a later family's definition of the same op would win). */
export const STANDARD_OP_FAMILIES = [
  arithOps,
  activationOps,
  matmulOps,
  shapeOps,
  tensorOps,
  reduceOps,
  softmaxOps,
  convOps,
  poolOps,
  normOps,
  bnTrainOps,
  dropoutOps,
  grlOps,
];

let registered = false;

/** Installs graft's standard ops into the op table, once; later calls return at once. Call before building or differentiating graphs. */
export function registerStandardOps(): void {
  if (registered) return;
  registerOps(...STANDARD_OP_FAMILIES);
  registered = true;
}

export { defineOp, differentiableOps, opDef, registeredOps } from '../ir/op-registry.js';
