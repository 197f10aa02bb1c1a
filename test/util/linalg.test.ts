import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Rng } from '../../src/tensor.js';
import { cholesky, choleskySolve, gramColumns, gramRows, symmetricEigen, thinSvd } from '../../src/util/linalg.js';

function randomMatrix(rows: number, cols: number, seed: number): Float64Array {
  const rng = new Rng(seed);
  return Float64Array.from({ length: rows * cols }, () => rng.normal());
}

function symmetric(n: number, seed: number): Float64Array {
  const m = randomMatrix(n, n, seed);
  const a = new Float64Array(n * n);
  for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) a[i * n + j] = m[i * n + j]! + m[j * n + i]!;
  return a;
}

describe('symmetricEigen', () => {
  it('decomposes a random symmetric matrix: A v = λ v, V orthonormal, values ascending', () => {
    for (const n of [1, 2, 7, 40]) {
      const a = symmetric(n, n);
      const { values, vectors } = symmetricEigen(a, n);
      for (let j = 1; j < n; j++) assert.ok(values[j]! >= values[j - 1]!, 'ascending');
      for (let j = 0; j < n; j++) {
        for (let r = 0; r < n; r++) {
          let av = 0;
          for (let k = 0; k < n; k++) av += a[r * n + k]! * vectors[j * n + k]!;
          assert.ok(Math.abs(av - values[j]! * vectors[j * n + r]!) < 1e-10, `A v = λ v (n=${n}, j=${j})`);
        }
        for (let i = 0; i < n; i++) {
          let dot = 0;
          for (let k = 0; k < n; k++) dot += vectors[i * n + k]! * vectors[j * n + k]!;
          assert.ok(Math.abs(dot - (i === j ? 1 : 0)) < 1e-10, 'orthonormal');
        }
      }
    }
  });

  it('finds known eigenvalues: [[2,1],[1,2]] has 1 and 3; a diagonal matrix its entries; zeros and repeats', () => {
    assert.deepEqual(
      Array.from(symmetricEigen([2, 1, 1, 2], 2).values, (v) => +v.toFixed(12)),
      [1, 3],
    );
    assert.deepEqual(Array.from(symmetricEigen([5, 0, 0, 0, -1, 0, 0, 0, 2], 3).values), [-1, 2, 5]);
    assert.deepEqual(Array.from(symmetricEigen(new Float64Array(9), 3).values), [0, 0, 0]);
    // 1 1ᵀ (4×4): eigenvalues 0, 0, 0, 4
    const ones = symmetricEigen(new Float64Array(16).fill(1), 4).values;
    assert.deepEqual(
      Array.from(ones, (v) => +v.toFixed(12) + 0),
      [0, 0, 0, 4],
    );
  });

  it('refuses a matrix of the wrong size', () => {
    assert.throws(() => symmetricEigen([1, 2, 3], 2), /4/);
  });
});

describe('cholesky', () => {
  it('solves an SPD system and refuses an indefinite one', () => {
    const n = 6;
    const m = randomMatrix(n, n, 3);
    const a = gramColumns(m, n, n);
    for (let i = 0; i < n; i++) a[i * n + i]! += 0.5;
    const x = randomMatrix(n, 2, 4);
    const b = new Float64Array(n * 2);
    for (let i = 0; i < n; i++) for (let c = 0; c < 2; c++) for (let k = 0; k < n; k++) b[i * 2 + c]! += a[i * n + k]! * x[k * 2 + c]!;
    const got = choleskySolve(cholesky(a, n), n, b, 2);
    for (let i = 0; i < x.length; i++) assert.ok(Math.abs(got[i]! - x[i]!) < 1e-9);
    assert.throws(() => cholesky([1, 2, 2, 1], 2), /not positive definite/);
  });
});

describe('thinSvd', () => {
  it('reconstructs tall and wide matrices (X = U S Vᵀ ⇒ UᵀX has row norms s) with orthonormal U', () => {
    for (const [n, d] of [
      [30, 5],
      [5, 30],
      [8, 8],
    ] as const) {
      const x = randomMatrix(n, d, n * 100 + d);
      const { k, u, s } = thinSvd(x, n, d);
      assert.equal(k, Math.min(n, d));
      for (let c = 1; c < k; c++) assert.ok(s[c]! <= s[c - 1]!);
      // ||uᵀ_c X|| = s_c, and the Gram of rows equals U S² Uᵀ
      const g = gramRows(x, n, d);
      for (let i = 0; i < n; i++)
        for (let j = 0; j < n; j++) {
          let r = 0;
          for (let c = 0; c < k; c++) r += u![i * k + c]! * s[c]! ** 2 * u![j * k + c]!;
          assert.ok(Math.abs(r - g[i * n + j]!) < 1e-8, `XXᵀ = U S² Uᵀ (${n}x${d})`);
        }
      for (let a = 0; a < k; a++)
        for (let b = 0; b < k; b++) {
          let dot = 0;
          for (let i = 0; i < n; i++) dot += u![i * k + a]! * u![i * k + b]!;
          assert.ok(Math.abs(dot - (a === b ? 1 : 0)) < 1e-8);
        }
    }
  });

  it('drops zero singular values of a rank-deficient tall matrix', () => {
    // rank 1: every row is a multiple of (1, 2, 3)
    const x = Float64Array.from({ length: 20 * 3 }, (_, i) => (Math.floor(i / 3) + 1) * ((i % 3) + 1));
    assert.equal(thinSvd(x, 20, 3).k, 1);
  });
});
