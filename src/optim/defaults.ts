/**
 * The default base learning rate of each optimizer: the one place it is set. `sgd()`, `adam()`, `adamw()`,
 * the config schema (train.optimizer.lr), `graft tune` and `graft adapt` all read it from here.
 */
export const DEFAULT_LR = { sgd: 0.01, adam: 1e-3, adamw: 1e-3 } as const;
