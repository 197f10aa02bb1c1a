/**
 * graft — transfer learning for TypeScript on onnxruntime-node.
 *
 * The library surface: load or build a model, freeze it, graft a new head, fit or fineTune, evaluate, export;
 * or run a whole configured training (`runTraining` / `startRun`, the run layer every surface drives).
 * Lower layers (graph IR, autodiff, step compiler) are exported too for those who build on them.
 */
import { registerStandardOps } from './ops/index.js';

export { adaBN } from './adapt/adabn.js';
export { type ImageFolderSplit, loadImageFolder } from './api/images.js';
export { backward } from './autodiff/backward.js';
export { gradCheck } from './autodiff/gradcheck.js';
export { loadDomain } from './choose/domains.js';
export { kendallTau } from './choose/kendall.js';
export { ARCH_PREFIX, type BackboneRank, type RankOptions, type RankResult, rank } from './choose/rank.js';
export { formatRanking, rankingPlotSpec, writeRanking } from './choose/report.js';
export { knnAccuracy } from './choose/scores/knn.js';
export { logme } from './choose/scores/logme.js';
export { linearProbeAccuracy } from './choose/scores/probe.js';
export { sfda } from './choose/scores/sfda.js';
export { type FeatureScores, SCORE_NAMES, type ScoreName, scoreFeatures } from './choose/scores.js';
export { type ShiftLevel, type ShiftOptions, type ShiftReport, shift, shiftAdvice } from './choose/shift.js';
export { mmdTest, momentSummary, proxyADistance } from './choose/shift-stats.js';
export { ImageSource } from './data/image-source.js';
export * from './data/index.js';
export { computeFeatures } from './features/backbone.js';
export * as features from './features/index.js';
export { Emitter } from './ir/emit.js';
export { Graph, type Node, type ValueInfo } from './ir/graph.js';
export { Model } from './ir/model.js';
export { extractSubgraph, findCut, stages, suffixFrom } from './ir/surgery.js';
export * from './nn/index.js';
export { decodeModel, encodeModel, loadModel, saveModel } from './onnx/io.js';
export { defineOp, differentiableOps, opDef, registeredOps, registerStandardOps } from './ops/index.js';
export * from './optim/index.js';
export { fitTemperature, softmaxWithTemperature, type TemperatureFit } from './report/temperature.js';
export { AUTO_HEAD_SEARCH } from './run/auto.js';
export { configSchema, defaultRunName, findConfigFile, type GraftConfig, loadConfig, parseConfig } from './run/config.js';
export { type AutoSummary, type AutoTrial, RunCancelled, type RunEvent, type RunListener, type TrainSummary } from './run/events.js';
export { type RunLrFindOptions, runLrFind } from './run/lr-find.js';
export { type RunHandle, type RunTrainingOptions, runFolder, runTraining, startRun } from './run/train.js';
export { type WebBundleOptions, type WebBundleResult, writeWebBundle } from './run/web-bundle.js';
export { DEVICES, type Device, defaultDevice, listBackends, setDefaultDevice } from './runtime/device.js';
export { defaultThreads, setDefaultThreads } from './runtime/threads.js';
export { ArraySource, type BatchSource } from './step/batches.js';
export { loadCheckpoint, saveCheckpoint } from './step/checkpoint.js';
export { type CompiledStep, compileTrainStep, type LossSpec, type StepSpec } from './step/compile.js';
export { compileEvalStep } from './step/eval-graph.js';
export { toInferenceModel } from './step/export.js';
export { NonFiniteLossError, StepRunner } from './step/runner.js';
export { Rng, Tensor } from './tensor.js';
export { type Callback, EarlyStopping, type EpochMetrics, type TrainState } from './train/callbacks.js';
export {
  type Classified,
  type Classifier,
  type ClassifyOptions,
  classifierOf,
  classifyFiles,
  type ImageClass,
  labelRows,
  loadClassifier,
  UNKNOWN_LABEL,
} from './train/classify.js';
export { evaluateSource, type FitOptions, type FitResult, fit } from './train/fit.js';
export { type FitConfig, Network, type NetworkMeta } from './train/network.js';
export type { FitProgress, FitStep } from './train/progress.js';
export { type Phase, phasesOf, TRAIN_MODES, type TrainMode } from './train/recipes.js';
export * as tune from './tune/index.js';
export { type OnTaskProgress, type TaskProgress, taskProgressBars } from './util/progress.js';

// the library entry point: graphs built through anything exported here find every standard op
registerStandardOps();
