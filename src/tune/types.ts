/** Types shared by the parts of `graft tune`: trials, their outcomes, and the study's identity. */
import type { Params, SearchSpace } from './space.js';

/** Whether larger or smaller objective values are better. */
export type Direction = 'maximize' | 'minimize';

/** Where a trial stands. `interrupted` is a past attempt cut short by a killed study (the trial is re-run). */
export type TrialState = 'running' | 'complete' | 'pruned' | 'failed';

/** One trial as replayed from the study log (its latest attempt). */
export interface TrialRecord {
  /** Trial number (0-based, unique in the study). */
  id: number;
  /** 1 for the first run; > 1 when earlier attempts were interrupted by a killed study and re-run from scratch. */
  attempt: number;
  params: Params;
  state: TrialState;
  /** Objective value: final for complete trials, the last report for pruned ones. */
  value?: number;
  /** Intermediate values of the latest attempt by step (epoch). */
  reports: Map<number, number>;
  /** Error message of a failed trial. */
  error?: string;
  /** Wall time of the latest attempt in seconds (when finished). */
  seconds?: number;
  /** Start time (ms since the epoch) of the latest attempt. */
  started: number;
}

/** How a trial run ended. */
export type TrialOutcome = { state: 'complete'; value: number } | { state: 'pruned'; value?: number; step?: number } | { state: 'failed'; error: string };

/** A trial handed to an executor. */
export interface TrialJob {
  id: number;
  attempt: number;
  params: Params;
}

/** Identity of a study: a log written for another space, direction, metric or objective cannot be resumed. */
export interface StudyIdentity {
  name: string;
  space: SearchSpace;
  direction: Direction;
  metric: string;
  /** Which objective is optimised (e.g. "graft" or a module path), for the compatibility check. */
  objective: string;
}

/** Better-than for a direction (NaN is never better). */
export function better(direction: Direction, a: number, b: number): boolean {
  return direction === 'maximize' ? a > b : a < b;
}

/** Sorts values best first. */
export function bestFirst(direction: Direction): (a: number, b: number) => number {
  return direction === 'maximize' ? (a, b) => b - a : (a, b) => a - b;
}

/** The latest report step of a trial, or 0. */
export function lastStep(t: TrialRecord): number {
  let s = 0;
  for (const k of t.reports.keys()) if (k > s) s = k;
  return s;
}
