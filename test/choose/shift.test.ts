/** shift() on known shifts: two halves of MNIST (none), the style shift, and MNIST → Fashion-MNIST. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { loadDomain } from '../../src/choose/domains.js';
import { type ShiftReport, shift, shiftAdvice } from '../../src/choose/shift.js';
import { parsePreprocessConfig } from '../../src/data/preprocess.js';
import { smallCNN } from '../../src/nn/index.js';
import type { BatchSource } from '../../src/step/batches.js';

const pre = parsePreprocessConfig({ size: [28, 28], channels: 1, resize: 'stretch', scale: 255, mean: [0], std: [1] }, 'test');
const small = { samples: 300, mmdSamples: 200, permutations: 100, seed: 0 };
const minP = 1 / 101;

/** A source whose labels throw when read: shift() only needs the images. */
function noLabels(src: BatchSource): BatchSource {
  return {
    length: src.length,
    sampleShape: src.sampleShape,
    fill: async (idx, x, y, ctx) => {
      await src.fill(idx, x, new BigInt64Array(y.length), ctx);
    },
  };
}

let mnist: BatchSource;
let style: BatchSource;
let fashion: BatchSource;
const reports: Record<string, ShiftReport> = {};

test('loads the three built-in domains', async () => {
  mnist = noLabels(await loadDomain('mnist', pre, { flag: '--source' }));
  style = noLabels(await loadDomain('mnist-style-shift', pre));
  fashion = noLabels(await loadDomain('fashion-mnist', pre));
  assert.equal(mnist.length, 60000);
  assert.deepEqual([...style.sampleShape], [1, 28, 28]);
  await assert.rejects(loadDomain('no/such/folder', pre, { flag: '--target' }), /--target: no\/such\/folder does not exist.*mnist-style-shift, fashion-mnist/);
  const rgb = parsePreprocessConfig({ size: [32, 32], channels: 3 }, 'test');
  await assert.rejects(loadDomain('mnist', rgb, { flag: '--source' }), /--source mnist gives 1x28x28 grayscale images/);
});

test('pixel space: no shift between two halves of MNIST; the style shift and Fashion-MNIST are clearly shifted', async () => {
  reports.none = await shift({ source: mnist, target: mnist, ...small });
  reports.style = await shift({ source: mnist, target: style, ...small });
  reports.fashion = await shift({ source: mnist, target: fashion, ...small });
  const { none, style: s, fashion: f } = reports;
  assert.equal(none!.samples.source, 300);
  assert.equal(none!.features.dims, 784);
  // no shift: the permutation test does not reject, the domain classifier is near chance
  assert.ok(none!.mmd.pValue > 0.05, `no-shift p ${none!.mmd.pValue}`);
  assert.ok(none!.aDistance.aDistance < 0.4, `no-shift A ${none!.aDistance.aDistance}`);
  assert.equal(none!.level, 'none');
  assert.deepEqual(none!.methods, []);
  for (const [name, r] of [
    ['style', s!],
    ['fashion', f!],
  ] as const) {
    assert.equal(r.mmd.pValue, minP, `${name}: no permutation reaches the observed MMD²`);
    assert.ok(r.aDistance.aDistance > 1.5, `${name}: A ${r.aDistance.aDistance}`);
    // the ordering: every measure puts the shifted domain far beyond the unshifted one
    assert.ok(r.mmd.mmd2 > 20 * Math.max(none!.mmd.mmd2, 1e-4), `${name}: MMD² ${r.mmd.mmd2} vs none ${none!.mmd.mmd2}`);
    assert.ok(r.summary.meanDistance > 5 * none!.summary.meanDistance, `${name}: mean distance`);
    assert.ok(r.summary.covRelative > 2 * none!.summary.covRelative, `${name}: covariance gap`);
    assert.equal(r.level, 'large');
    assert.ok(r.methods.includes('mcc'));
    assert.match(r.advice.join(' '), /Adaptation is needed/);
  }
});

test("a backbone's feature space (a seeded SmallCNN) orders the shifts the same way", async () => {
  const backbone = smallCNN({ classes: 10, width: 8 }).build({ inputShape: ['N', 1, 28, 28], seed: 0 });
  const none = await shift({ source: mnist, target: mnist, backbone, ...small });
  const st = await shift({ source: mnist, target: style, backbone, ...small });
  assert.match(none.features.from, /input of the final classifier/);
  assert.equal(none.features.dims, 32);
  assert.ok(none.mmd.pValue > 0.05, `p ${none.mmd.pValue}`);
  assert.equal(st.mmd.pValue, minP);
  assert.ok(st.aDistance.aDistance > none.aDistance.aDistance + 1);
  assert.ok(st.mmd.mmd2 > 20 * Math.max(none.mmd.mmd2, 1e-4));
  // the model has BatchNorm: AdaBN is among the methods a moderate shift would get
  assert.ok(shiftAdvice({ aDistance: 1, pValue: 0.001, summary: st.summary, hasBatchNorm: true }).methods.includes('adabn'));
});

test('advice thresholds and bad input', async () => {
  const summary = { meanDistance: 0, coral: 0, covRelative: 0, normRatio: 1 };
  assert.equal(shiftAdvice({ aDistance: 1.9, pValue: 0.3, summary }).level, 'none');
  assert.equal(shiftAdvice({ aDistance: 0.3, pValue: 0.01, summary }).level, 'small');
  const unusable = shiftAdvice({ aDistance: 0.05, pValue: 0.01, summary });
  assert.equal(unusable.level, 'none');
  assert.match(unusable.advice[0]!, /sees a difference \(p = 0\.010\), but a linear domain classifier does no better than chance/);
  assert.equal(shiftAdvice({ aDistance: 1.0, pValue: 0.01, summary }).level, 'moderate');
  assert.equal(shiftAdvice({ aDistance: 1.8, pValue: 0.01, summary }).level, 'large');
  assert.match(shiftAdvice({ aDistance: 1, pValue: 0.01, summary: { ...summary, normRatio: 3 } }).advice.join(' '), /3\.00× as large.*preprocessed alike/);
  const wide = { length: 20, sampleShape: [2, 28, 28], fill: () => {} };
  await assert.rejects(shift({ source: mnist, target: wide }), /\[1x28x28\] but the target gives \[2x28x28\]/);
});
