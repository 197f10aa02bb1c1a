/**
 * Optimizers as ONNX update subgraphs. An optimizer emits, inside the training-step graph, the ops
 * that turn (param, grad, state) into (new param, new state). Learning rates and other per-step
 * scalars are graph inputs, so schedules never rebuild the graph.
 */
import type { Emitter } from '../ir/emit.js';
import type { Tensor } from '../tensor.js';

/** One trainable parameter inside the step graph. */
export interface ParamSlot {
  /** Graph input holding the current value. */
  param: string;
  /** Value holding its gradient (already clipped if clipping is on). */
  grad: string;
  /** Index of its parameter group. */
  group: number;
  dims: number[];
}

/** A parameter group: its own learning rate multiplier and weight decay (discriminative LRs). */
export interface ParamGroup {
  /** Multiplies the base LR fed each step (e.g. 0.01 for a backbone at lr/100). Default 1. */
  lrScale?: number;
  /** Weight decay for this group; overrides the optimizer's. */
  weightDecay?: number;
}

/** A state tensor the runner must feed back each step. */
export interface StateSlot {
  input: string;
  output: string;
  init: Tensor;
}

export interface UpdateResult {
  /** param input name → updated value name. */
  params: Map<string, string>;
  state: StateSlot[];
}

export interface Optimizer {
  readonly name: string;
  /** Hyperparameters, for logs and checkpoints. */
  readonly config: Record<string, unknown>;
  /**
   * Emits the update. `lr[g]` is the name of a float scalar graph input holding group g's learning
   * rate for this step; `scalars` are other scalar inputs the optimizer declared in {@link Optimizer.scalarInputs}.
   */
  emit(e: Emitter, slots: ParamSlot[], lr: string[], groups: ParamGroup[], scalars: Record<string, string>): UpdateResult;
  /** Names of extra float scalar inputs this optimizer needs each step (e.g. Adam's bias corrections). */
  scalarInputs(): string[];
  /** Values for those inputs at a 1-based step number. */
  scalarValues(step: number): Record<string, number>;
}
