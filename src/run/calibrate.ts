/**
 * The end of a training run: temperature scaling fitted on the validation predictions (report/temperature.ts),
 * set on the network so its export's "probabilities" and graft's predict/eval/classify are calibrated.
 */

import { fitTemperature, logitsFromProbabilities, softmaxWithTemperature, type TemperatureFit } from '../report/temperature.js';
import type { BatchSource } from '../step/batches.js';
import type { Network } from '../train/network.js';

/**
 * Fits the temperature on `val` (the uncalibrated network's predictions) and sets `net.temperature`.
 * @returns the fit (temperature, val NLL and ECE before and after) and the val set's calibrated probabilities
 *   (from the same pass, so the caller need not predict val again), or undefined without labelled val data.
 */
export async function calibrateOnVal(
  net: Network,
  val: BatchSource | undefined,
  batchSize: number,
): Promise<{ fit: TemperatureFit; probabilities: Float32Array } | undefined> {
  const labels = (val as { labels?: Int32Array } | undefined)?.labels;
  if (!val || !labels || val.length === 0) return undefined;
  net.temperature = undefined;
  const { probabilities, classes } = await net.predict(val, batchSize);
  const logits = logitsFromProbabilities(probabilities);
  const fit = fitTemperature(logits, classes, labels);
  net.temperature = fit.temperature;
  return { fit, probabilities: softmaxWithTemperature(logits, classes, fit.temperature) };
}
