/**
 * The training recipes: which parameters train in which phase, at which LR multiplier and with which
 * parameter groups. One table serves `graft train`, `graft pretrain`, `graft lr-find` (its first phase),
 * `graft tune` and the library's {@link Network.fineTune}.
 *
 * - `head`: the backbone frozen, only the new head trains (on features computed once).
 * - `last-stages`: the head and the last N stages (see `graft inspect`).
 * - `full`: everything trains from the start.
 * - `fine-tune`: fastai's `fine_tune`: the head alone for `freezeEpochs`, then everything at half the LR,
 *   spread discriminatively over the stages (lr/100 … lr).
 * - `pretrain`: a built-in architecture trained from scratch, its own classifier included.
 * - `auto` (the default of `graft train`): a short search over head settings on features computed once, then the
 *   last stages when the time budget allows (run/auto.ts). Its one recipe phase here is the head's, the phase
 *   its search trains in each trial (and what `graft lr-find` tests).
 */

/** The train modes a config can name. */
export const TRAIN_MODES = ['auto', 'head', 'last-stages', 'full', 'fine-tune'] as const;
export type TrainMode = (typeof TRAIN_MODES)[number];

/** What trains in a phase, as calls on a network (kept structural so the recipes need no Network import). */
export interface Trainable {
  unfreeze(opts?: { lastStages?: number }): unknown;
}

/** One phase of a recipe. */
export interface Phase {
  name: string;
  epochs: number;
  /** Multiplier on the configured base LR. */
  lrMul: number;
  /** 'discriminative': LRs spread geometrically from lr/100 (first stage) to lr (head). */
  groups: 'single' | 'discriminative';
  /** Makes the phase's parameters trainable (the network arrives frozen apart from its head). */
  setup(net: Trainable): void;
}

/** The settings a recipe reads (the `train` section of the config). */
export interface RecipeSettings {
  mode: TrainMode;
  epochs: number;
  freezeEpochs: number;
  lastStages: number;
}

/** The phases of a recipe, in order. `pretrain` trains everything in one phase. */
export function phasesOf(t: RecipeSettings, pretrain = false): Phase[] {
  const all = (net: Trainable) => void net.unfreeze();
  const one = (name: string, setup: (net: Trainable) => void): Phase[] => [{ name, epochs: t.epochs, lrMul: 1, groups: 'single', setup }];
  if (pretrain) return one('pretrain', all);
  switch (t.mode) {
    case 'head':
    case 'auto':
      return one('head', () => {});
    case 'last-stages':
      return one('last-stages', (net) => void net.unfreeze({ lastStages: t.lastStages }));
    case 'full':
      return one('full', all);
    case 'fine-tune': {
      const head: Phase[] = t.freezeEpochs > 0 ? [{ name: 'head', epochs: t.freezeEpochs, lrMul: 1, groups: 'single', setup: () => {} }] : [];
      return [...head, { name: 'fine-tune', epochs: t.epochs, lrMul: 0.5, groups: 'discriminative', setup: all }];
    }
  }
}
