/**
 * Objectives: what a trial runs. An objective module (a .ts/.js file) exports
 * `createObjective(options)`, which returns (or resolves to) a function of the trial's parameters:
 *
 * ```ts
 * export async function createObjective(options: { scale: number }): Promise<Objective> {
 *   const data = await load();                      // once per worker process
 *   return async (params, ctx) => {
 *     for (let epoch = 1; epoch <= 10; epoch++) {
 *       const acc = trainOneEpoch(params);
 *       if (await ctx.report(epoch, acc)) throw new TrialPruned(acc); // the pruner says stop
 *     }
 *     return acc;                                   // the objective value
 *   };
 * }
 * ```
 *
 * The built-in objective (graft-objective.ts) trains a graft network; tests use synthetic ones.
 */
import { pathToFileURL } from 'node:url';
import type { Params } from './space.js';

/** What an objective sees besides the parameters. */
export interface TrialContext {
  /** Trial number. */
  trial: number;
  /** Attempt (> 1 when the trial is re-run after a killed study). */
  attempt: number;
  /** onnxruntime threads this trial may use. */
  threads: number;
  /**
   * Reports an intermediate value (e.g. the validation accuracy after `step` epochs). Resolves to true
   * when the pruner says the trial should stop: throw {@link TrialPruned} then (a decision that comes
   * with the final report can be ignored: the trial is complete).
   */
  report(step: number, value: number): Promise<boolean>;
}

/** A trial function: parameters in, objective value out. */
export type Objective = (params: Params, ctx: TrialContext) => Promise<number>;

/** Thrown by an objective that stops because the pruner said so. */
export class TrialPruned extends Error {
  override name = 'TrialPruned';
  constructor(
    /** The last reported value, if any. */
    readonly value?: number,
    /** The step at which it stopped. */
    readonly step?: number,
  ) {
    super(`trial pruned${step !== undefined ? ` at step ${step}` : ''}`);
  }
}

/** True for a {@link TrialPruned} (also one thrown by another copy of this module). */
export function isPruned(e: unknown): e is TrialPruned {
  return (e as Error | undefined)?.name === 'TrialPruned';
}

/** Where a worker finds an objective: a module exporting `createObjective(options)`. */
export interface ObjectiveSpec {
  /** Absolute path of the module. */
  module: string;
  /** Passed to `createObjective` (must survive structured cloning). */
  options?: unknown;
}

/** The shape of an objective module. */
export interface ObjectiveModule {
  createObjective(options: unknown): Objective | Promise<Objective>;
}

/**
 * Loads an objective module and creates its objective.
 * @throws naming the module when it cannot be imported or does not export `createObjective`.
 */
export async function loadObjective(spec: ObjectiveSpec): Promise<Objective> {
  let mod: Partial<ObjectiveModule>;
  try {
    mod = (await import(pathToFileURL(spec.module).href)) as Partial<ObjectiveModule>;
  } catch (e) {
    throw new Error(`Cannot load the objective module ${spec.module}: ${(e as Error).message}. Check objective.module in the tune config.`);
  }
  if (typeof mod.createObjective !== 'function')
    throw new Error(
      `The objective module ${spec.module} does not export a createObjective(options) function. Export one that returns (params, ctx) => Promise<number>.`,
    );
  return await mod.createObjective(spec.options);
}

/** Message (and the top of the stack) of an error, for the study log. */
export function errorText(e: unknown): string {
  if (e instanceof Error) {
    const frame = e.stack?.split('\n').find((l) => l.trim().startsWith('at '));
    return frame ? `${e.message} (${frame.trim()})` : e.message;
  }
  return String(e);
}
