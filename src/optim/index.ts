/** Optimizers (SGD, Adam, AdamW) as ONNX update subgraphs, gradient clipping, and host-side LR schedules. */
export { ADAM_BC1, ADAM_BC2, type AdamOptions, adam, adamw } from './adam.js';
export { clipGradNorm } from './clip.js';
export { DEFAULT_LR } from './defaults.js';
export type { Optimizer, ParamGroup, ParamSlot, StateSlot, UpdateResult } from './optimizer.js';
export {
  constantSchedule,
  cosineSchedule,
  invSchedule,
  makeSchedule,
  type OneCycleOptions,
  oneCycleSchedule,
  type Schedule,
  type ScheduleKind,
  type ScheduleSpec,
  stepSchedule,
  type WarmupOptions,
  withWarmup,
} from './schedule.js';
export { SGD_GRAD_SCALE, type SgdOptions, sgd } from './sgd.js';
