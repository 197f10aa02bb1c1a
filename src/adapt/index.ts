/**
 * Unsupervised domain adaptation: labelled source + unlabelled target, each method's loss compiled into the
 * same training-step graph as the source cross-entropy.
 *
 * ```ts
 * import { adapt, unlabelled } from 'graft/adapt';
 * const r = await adapt({ model, source, target: unlabelled(targetImages), method: 'mcc', sourceVal, targetEval });
 * console.log(r.selected.target_acc, r.selected.snd);
 * ```
 */
export { type AdaBnOptions, adaBN } from './adabn.js';
export { type AdversarialLoss, type AdversarialOptions, DISC_PREFIX, domainAdversarialLoss, grlLambda } from './adversarial.js';
export { strongAugment, weakAugment } from './augment.js';
export {
  type AutoCandidate,
  type AutoEnsemble,
  type AutoOptions,
  type AutoReport,
  argmaxBy,
  autoAdapt,
  defaultCandidates,
  formatAutoTable,
  parseValidator,
  VALIDATORS,
  type Validator,
  validatorScore,
} from './auto.js';
export { type CompareOptions, type CompareRow, compareMethods, formatCompareTable, type MeanStd, meanStd, summarize } from './compare.js';
export { type AdaptStepSpec, type CompiledAdaptStep, compileAdaptStep, LAMBDA_INPUT } from './compile.js';
export { assertUnlabelled, checkDomains, type UnlabelledSource, unlabelled, unlabelledArrays } from './data.js';
export { ENSEMBLE_EPS, ensembleModel } from './ensemble.js';
export { FINISHED_FILE, loadFinished, modelChecksum, saveFinished } from './finished.js';
export { JointBatchSource } from './joint.js';
export { coralLoss, DAN_MULTIPLIERS, entropyRows, type MmdOptions, mccLoss, mmdLoss, pseudoLabelLoss } from './losses.js';
export { METHOD_INFO, METHODS, type MethodContext, type MethodInfo, type MethodName, type MethodSpec, type MethodTerm, parseMethod } from './methods.js';
export { type AdaptOptions, type AdaptResult, adapt, checkHasBN, withAdaBN } from './run.js';
export {
  better,
  CheckpointSelection,
  type EvalRecord,
  imScore,
  meanEntropy,
  predictProbabilities,
  probabilityScores,
  type Scores,
  type SelectBy,
  type SelectionOptions,
  scoreModel,
  snd,
} from './select.js';
export { loadTextDomains, TEXT_METHODS, type TextDomainOptions, type TextDomains, textAdaptModel, type UnlabelledTexts, unlabelledTexts } from './text.js';
