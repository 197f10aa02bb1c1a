/**
 * Each transferability score against cases with known answers. LogME and SFDA: numbers computed once by
 * `python3 bench/logme-reference.py` (NumPy 2.4.6; NumPy transcriptions of the reference implementations,
 * github thuml/LogME and TencentARC/SFDA) on the fixture `features()` below, which the script builds from the
 * same formula. kNN: hand-made sets. Linear probe: separable vs pure-noise features.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { knnAccuracy } from '../../src/choose/scores/knn.js';
import { logme } from '../../src/choose/scores/logme.js';
import { linearProbeAccuracy } from '../../src/choose/scores/probe.js';
import { sfda } from '../../src/choose/scores/sfda.js';
import { Rng } from '../../src/tensor.js';

/** f[i,j] = sin(1.7 i + 0.3 j) + cos(0.11 i j) + sep·(j == i mod classes); y = i mod classes (as bench/logme-reference.py). */
function features(n: number, d: number, classes: number, sep: number): { f: Float64Array; y: Int32Array } {
  const f = new Float64Array(n * d);
  const y = Int32Array.from({ length: n }, (_, i) => i % classes);
  for (let i = 0; i < n; i++) for (let j = 0; j < d; j++) f[i * d + j] = Math.sin(1.7 * i + 0.3 * j) + Math.cos(0.11 * i * j) + (j === y[i] ? sep : 0);
  return { f, y };
}

const close = (got: number, want: number, what: string) =>
  assert.ok(Math.abs(got - want) <= 1e-9 * Math.max(1, Math.abs(want)), `${what}: ${got} vs reference ${want}`);

describe('LogME matches the reference implementation (numbers from bench/logme-reference.py)', () => {
  it('classification, N > D (the truncated-SVD path): n=60, d=8, 3 classes, sep 1', () => {
    const { f, y } = features(60, 8, 3, 1);
    const r = logme(f, 60, 8, { labels: y });
    close(r.score, -0.6551107553845431, 'score');
    [-0.4216050501981521, -0.7805488486366499, -0.7631783673188276].forEach((e, c) => {
      close(r.targets[c]!.evidence, e, `class ${c}`);
    });
  });

  it('classification, N < D (the thin-SVD path): n=20, d=50, 4 classes', () => {
    const { f, y } = features(20, 50, 4, 1);
    close(logme(f, 20, 50, { labels: y }).score, 3.703392007795422, 'score');
  });

  it('scores inseparable features lower: the same fixture without the class offset', () => {
    const { f, y } = features(60, 8, 3, 0);
    const r = logme(f, 60, 8, { labels: y });
    close(r.score, -0.8301072222739662, 'score');
    assert.ok(r.score < -0.6551107553845431);
  });

  it('regression: two target columns [sin(0.5 i), 0.1 i − 1] on n=40, d=6', () => {
    const { f } = features(40, 6, 2, 0);
    const v = new Float64Array(80);
    for (let i = 0; i < 40; i++) {
      v[2 * i] = Math.sin(0.5 * i);
      v[2 * i + 1] = 0.1 * i - 1;
    }
    const r = logme(f, 40, 6, { values: v, columns: 2 });
    close(r.score, -0.8583255537240653, 'score');
    close(r.targets[0]!.evidence, -0.5303095250076132, 'target 0');
  });

  it('refuses mismatched labels and non-finite features', () => {
    assert.throws(() => logme(new Float64Array(6), 3, 2, { labels: [0, 1] }), /2 labels for 3/);
    assert.throws(() => logme([0, Number.NaN], 1, 2, { labels: [0] }), /NaN/);
  });
});

describe('SFDA', () => {
  it('matches the reference implementation on the fixture (n=60, d=8, 3 classes)', () => {
    const { f, y } = features(60, 8, 3, 1);
    const r = sfda(f, 60, 8, y);
    close(r.score, 0.5559729960887979, 'score');
    close(r.shrinkage, 4.7740540987828454e-8, 'shrinkage');
    close(sfda(features(60, 8, 3, 0).f, 60, 8, y).score, 0.33361638590829495, 'inseparable score');
  });

  it('orders separable above inseparable features, and near chance for noise', () => {
    const rng = new Rng(7);
    const n = 150;
    const d = 6;
    const y = Int32Array.from({ length: n }, (_, i) => i % 3);
    const noise = Float64Array.from({ length: n * d }, () => rng.normal());
    const separable = noise.map((v, k) => v + (k % d === y[Math.floor(k / d)]! ? 4 : 0));
    const s = sfda(separable, n, d, y).score;
    const u = sfda(noise, n, d, y).score;
    assert.ok(s > 0.8, `separable: ${s}`);
    assert.ok(u < 0.45, `noise: ${u}`);
  });

  it('refuses a single class', () => {
    assert.throws(() => sfda([1, 2, 3, 4], 2, 2, [0, 0]), /two classes/);
  });
});

describe('kNN accuracy (leave-one-out, cosine)', () => {
  it('is 1 on two well separated directions and 0 when every neighbour is of the other class', () => {
    // class 0 along +x, class 1 along +y
    const x = [1, 0.1, 1, 0, 1, -0.1, 0.1, 1, 0, 1, -0.1, 1];
    const y = [0, 0, 0, 1, 1, 1];
    assert.equal(knnAccuracy(x, 6, 2, y, { k: 1 }), 1);
    // alternating pairs: each point's single nearest other point has the other label
    const x2 = [1, 0, 1, 0.01, 0, 1, 0.01, 1];
    assert.equal(knnAccuracy(x2, 4, 2, [0, 1, 0, 1], { k: 1 }), 0);
  });

  it('uses cosine similarity (scale-free) and a majority of k', () => {
    // the third point of class 0 is far in distance but same direction; with k=3 the majority decides
    const x = [1, 0, 100, 0, 0.9, 0.1, 0, 1, 0.1, 0.9, 0, 50];
    const y = [0, 0, 0, 1, 1, 1];
    assert.equal(knnAccuracy(x, 6, 2, y, { k: 2 }), 1);
    // angles 0°, 3.0°, 6.3°, 1.8°, 90° with labels 0 1 1 0 0: every point's 3 nearest hold a majority of the
    // other label (e.g. the 0° point: 1.8° of class 0, 3.0° and 6.3° of class 1), so all five are wrong with k=3;
    // with k=1 only the 0° point (nearest: 1.8°, class 0) and the 6.3° point (nearest: 3.0°, class 1) are right
    const x3 = [1, 0, 0.95, 0.05, 0.9, 0.1, 0.97, 0.03, 0, 1];
    assert.equal(knnAccuracy(x3, 5, 2, [0, 1, 1, 0, 0], { k: 3 }), 0);
    assert.equal(knnAccuracy(x3, 5, 2, [0, 1, 1, 0, 0], { k: 1 }), 2 / 5);
  });
});

describe('linear probe (graft head training on features)', () => {
  it('reaches a high held-out accuracy on separable features and about chance on noise', async () => {
    const rng = new Rng(3);
    const n = 240;
    const d = 8;
    const y = Int32Array.from({ length: n }, (_, i) => i % 4);
    const noise = Float32Array.from({ length: n * d }, () => rng.normal());
    const separable = noise.map((v, k) => v + (k % d === y[Math.floor(k / d)]! ? 4 : 0));
    const good = await linearProbeAccuracy(separable, n, d, y);
    const bad = await linearProbeAccuracy(noise, n, d, y);
    assert.equal(good.heldOut + good.train, n);
    assert.ok(good.accuracy > 0.85, `separable: ${good.accuracy}`);
    assert.ok(bad.accuracy < 0.45, `noise: ${bad.accuracy}`);
  });
});
