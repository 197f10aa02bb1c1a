/** Samplers of `graft tune`: random search, an exhaustive grid, and TPE (see tpe.ts). All are seeded per trial id. */
import { gridOf, type Params, type SearchSpace, samplePrior, streamRng } from './space.js';
import { type TpeOptions, TpeSampler } from './tpe.js';
import type { Direction, TrialRecord } from './types.js';

/** Proposes the parameters of new trials. */
export interface Sampler {
  readonly name: string;
  /** Parameters of trial `id`, given every trial recorded so far (finished ones inform the choice). */
  sample(id: number, trials: readonly TrialRecord[]): Params;
  /** Number of distinct trials the sampler can propose (the grid's size), if finite. */
  readonly size?: number;
}

/** Independent draws from each parameter's prior. */
export class RandomSampler implements Sampler {
  readonly name = 'random';
  constructor(
    readonly space: SearchSpace,
    readonly seed = 0,
  ) {}
  sample(id: number): Params {
    const rng = streamRng(this.seed, id);
    const out: Params = {};
    for (const [name, p] of Object.entries(this.space)) out[name] = samplePrior(p, rng);
    return out;
  }
}

/** Every combination of the parameters' grid values; trial i gets combination i. */
export class GridSampler implements Sampler {
  readonly name = 'grid';
  private readonly grid: Params[];
  constructor(space: SearchSpace) {
    this.grid = gridOf(space);
  }
  get size(): number {
    return this.grid.length;
  }
  sample(id: number): Params {
    const p = this.grid[id];
    if (!p) throw new Error(`The grid has ${this.grid.length} combinations; trial ${id} is past its end. Set study.trials ≤ ${this.grid.length}.`);
    return { ...p };
  }
}

/** Sampler settings of a tune config. */
export type SamplerConfig = { name: 'random' } | { name: 'grid' } | ({ name: 'tpe' } & Omit<TpeOptions, 'seed'>);

/** Builds the configured sampler. */
export function makeSampler(cfg: SamplerConfig, space: SearchSpace, direction: Direction, seed: number): Sampler {
  switch (cfg.name) {
    case 'random':
      return new RandomSampler(space, seed);
    case 'grid':
      return new GridSampler(space);
    case 'tpe': {
      const { name: _n, ...o } = cfg;
      return new TpeSampler(space, direction, { ...o, seed });
    }
  }
}
