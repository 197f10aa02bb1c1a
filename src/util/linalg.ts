/**
 * Small dense linear algebra in Float64 for feature statistics (transferability scores, domain distances):
 * Gram matrices, a symmetric eigensolver, Cholesky, and a thin SVD of a tall or wide matrix by the Gram-matrix
 * trick (eigen-decompose the smaller of XᵀX and XXᵀ). Matrices are row-major `Float64Array`s.
 *
 * The eigensolver is the Householder tridiagonalisation + implicit QL of EISPACK's tred2/tql2 (as in JAMA),
 * O(n³), stable for every symmetric matrix; it runs on the transposed matrix so every inner loop is contiguous.
 */

/** A symmetric eigen-decomposition A = V diag(values) Vᵀ. */
export interface SymmetricEigen {
  /** Eigenvalues, ascending. */
  values: Float64Array;
  /** Eigenvectors as rows: row j (`vectors[j*n .. j*n+n)`) is the unit eigenvector of `values[j]`. */
  vectors: Float64Array;
}

/** Copies `x` (n×d, float32 or float64) to a new Float64Array, checking its size. */
export function toFloat64(x: ArrayLike<number>, n: number, d: number, what = 'matrix'): Float64Array {
  if (x.length !== n * d) throw new Error(`${what}: ${x.length} values but ${n}x${d} needs ${n * d}; pass the right row and column counts.`);
  return Float64Array.from(x);
}

/** XᵀX (d×d) of a row-major n×d matrix. */
export function gramColumns(x: ArrayLike<number>, n: number, d: number): Float64Array {
  const g = new Float64Array(d * d);
  for (let r = 0; r < n; r++) {
    const o = r * d;
    for (let i = 0; i < d; i++) {
      const xi = x[o + i]!;
      if (xi === 0) continue;
      const gi = i * d;
      for (let j = i; j < d; j++) g[gi + j]! += xi * x[o + j]!;
    }
  }
  for (let i = 0; i < d; i++) for (let j = 0; j < i; j++) g[i * d + j] = g[j * d + i]!;
  return g;
}

/** XXᵀ (n×n) of a row-major n×d matrix. */
export function gramRows(x: ArrayLike<number>, n: number, d: number): Float64Array {
  const g = new Float64Array(n * n);
  for (let i = 0; i < n; i++) {
    for (let j = i; j < n; j++) {
      let s = 0;
      for (let k = 0; k < d; k++) s += x[i * d + k]! * x[j * d + k]!;
      g[i * n + j] = s;
      g[j * n + i] = s;
    }
  }
  return g;
}

/**
 * Eigen-decomposition of a symmetric n×n matrix (only symmetry is assumed; the lower triangle is read).
 * @returns eigenvalues ascending and their orthonormal eigenvectors (as rows).
 */
export function symmetricEigen(a: ArrayLike<number>, n: number): SymmetricEigen {
  if (a.length !== n * n) throw new Error(`symmetricEigen: ${a.length} values but ${n}x${n} needs ${n * n}.`);
  // t holds Vᵀ: V[r][c] lives at t[c*n + r], so columns of V (the hot loops) are contiguous rows of t
  const t = new Float64Array(n * n);
  for (let i = 0; i < n; i++) for (let j = 0; j <= i; j++) t[i * n + j] = t[j * n + i] = a[i * n + j]!;
  const d = new Float64Array(n);
  const e = new Float64Array(n);
  if (n === 0) return { values: d, vectors: t };
  tred2(t, d, e, n);
  tql2(t, d, e, n);
  return { values: d, vectors: t };
}

/** Householder reduction to tridiagonal form (EISPACK tred2), on t = Vᵀ. */
function tred2(t: Float64Array, d: Float64Array, e: Float64Array, n: number): void {
  const V = (r: number, c: number) => c * n + r;
  for (let j = 0; j < n; j++) d[j] = t[V(n - 1, j)]!;
  for (let i = n - 1; i > 0; i--) {
    let scale = 0;
    let h = 0;
    for (let k = 0; k < i; k++) scale += Math.abs(d[k]!);
    if (scale === 0) {
      e[i] = d[i - 1]!;
      for (let j = 0; j < i; j++) {
        d[j] = t[V(i - 1, j)]!;
        t[V(i, j)] = 0;
        t[V(j, i)] = 0;
      }
    } else {
      for (let k = 0; k < i; k++) {
        d[k]! /= scale;
        h += d[k]! * d[k]!;
      }
      let f = d[i - 1]!;
      let g = Math.sqrt(h);
      if (f > 0) g = -g;
      e[i] = scale * g;
      h -= f * g;
      d[i - 1] = f - g;
      for (let j = 0; j < i; j++) e[j] = 0;
      for (let j = 0; j < i; j++) {
        f = d[j]!;
        t[V(j, i)] = f;
        g = e[j]! + t[V(j, j)]! * f;
        const cj = j * n; // column j of V
        for (let k = j + 1; k <= i - 1; k++) {
          g += t[cj + k]! * d[k]!;
          e[k]! += t[cj + k]! * f;
        }
        e[j] = g;
      }
      f = 0;
      for (let j = 0; j < i; j++) {
        e[j]! /= h;
        f += e[j]! * d[j]!;
      }
      const hh = f / (h + h);
      for (let j = 0; j < i; j++) e[j]! -= hh * d[j]!;
      for (let j = 0; j < i; j++) {
        f = d[j]!;
        g = e[j]!;
        const cj = j * n;
        for (let k = j; k <= i - 1; k++) t[cj + k]! -= f * e[k]! + g * d[k]!;
        d[j] = t[V(i - 1, j)]!;
        t[V(i, j)] = 0;
      }
    }
    d[i] = h;
  }
  // accumulate the transformations
  for (let i = 0; i < n - 1; i++) {
    t[V(n - 1, i)] = t[V(i, i)]!;
    t[V(i, i)] = 1;
    const h = d[i + 1]!;
    const ci1 = (i + 1) * n;
    if (h !== 0) {
      for (let k = 0; k <= i; k++) d[k] = t[ci1 + k]! / h;
      for (let j = 0; j <= i; j++) {
        const cj = j * n;
        let g = 0;
        for (let k = 0; k <= i; k++) g += t[ci1 + k]! * t[cj + k]!;
        for (let k = 0; k <= i; k++) t[cj + k]! -= g * d[k]!;
      }
    }
    for (let k = 0; k <= i; k++) t[ci1 + k] = 0;
  }
  for (let j = 0; j < n; j++) {
    d[j] = t[V(n - 1, j)]!;
    t[V(n - 1, j)] = 0;
  }
  t[V(n - 1, n - 1)] = 1;
  e[0] = 0;
}

/** Implicit QL on the tridiagonal (d, e) accumulating into t = Vᵀ (EISPACK tql2); sorts ascending. */
function tql2(t: Float64Array, d: Float64Array, e: Float64Array, n: number): void {
  for (let i = 1; i < n; i++) e[i - 1] = e[i]!;
  e[n - 1] = 0;
  let f = 0;
  let tst1 = 0;
  const eps = 2 ** -52;
  for (let l = 0; l < n; l++) {
    tst1 = Math.max(tst1, Math.abs(d[l]!) + Math.abs(e[l]!));
    let m = l;
    while (m < n) {
      if (Math.abs(e[m]!) <= eps * tst1) break;
      m++;
    }
    if (m > l) {
      let iter = 0;
      do {
        if (++iter > 60)
          throw new Error(`symmetricEigen: no convergence after 60 QL iterations at eigenvalue ${l} of ${n}; the matrix holds NaN or infinite values.`);
        let g = d[l]!;
        let p = (d[l + 1]! - g) / (2 * e[l]!);
        let r = Math.hypot(p, 1);
        if (p < 0) r = -r;
        d[l] = e[l]! / (p + r);
        d[l + 1] = e[l]! * (p + r);
        const dl1 = d[l + 1]!;
        let h = g - d[l]!;
        for (let i = l + 2; i < n; i++) d[i]! -= h;
        f += h;
        p = d[m]!;
        let c = 1;
        let c2 = c;
        let c3 = c;
        const el1 = e[l + 1]!;
        let s = 0;
        let s2 = 0;
        for (let i = m - 1; i >= l; i--) {
          c3 = c2;
          c2 = c;
          s2 = s;
          g = c * e[i]!;
          h = c * p;
          r = Math.hypot(p, e[i]!);
          e[i + 1] = s * r;
          s = e[i]! / r;
          c = p / r;
          p = c * d[i]! - s * g;
          d[i + 1] = h + s * (c * g + s * d[i]!);
          const ci = i * n;
          const ci1 = ci + n;
          for (let k = 0; k < n; k++) {
            const hk = t[ci1 + k]!;
            t[ci1 + k] = s * t[ci + k]! + c * hk;
            t[ci + k] = c * t[ci + k]! - s * hk;
          }
        }
        p = (-s * s2 * c3 * el1 * e[l]!) / dl1;
        e[l] = s * p;
        d[l] = c * p;
      } while (Math.abs(e[l]!) > eps * tst1);
    }
    d[l]! += f;
    e[l] = 0;
  }
  // selection sort, ascending, swapping eigenvector rows
  for (let i = 0; i < n - 1; i++) {
    let k = i;
    let p = d[i]!;
    for (let j = i + 1; j < n; j++)
      if (d[j]! < p) {
        k = j;
        p = d[j]!;
      }
    if (k !== i) {
      d[k] = d[i]!;
      d[i] = p;
      for (let j = 0; j < n; j++) {
        const x = t[i * n + j]!;
        t[i * n + j] = t[k * n + j]!;
        t[k * n + j] = x;
      }
    }
  }
}

/**
 * Cholesky factor L (lower triangular, row-major) of a symmetric positive definite n×n matrix, A = LLᵀ.
 * @throws when A is not positive definite (a pivot ≤ 0), naming the pivot.
 */
export function cholesky(a: ArrayLike<number>, n: number): Float64Array {
  const l = new Float64Array(n * n);
  for (let j = 0; j < n; j++) {
    const lj = j * n;
    let s = a[lj + j]!;
    for (let k = 0; k < j; k++) s -= l[lj + k]! * l[lj + k]!;
    if (!(s > 0)) throw new Error(`cholesky: the matrix is not positive definite (pivot ${j} of ${n} is ${s}); regularise it (add to the diagonal).`);
    const djj = Math.sqrt(s);
    l[lj + j] = djj;
    for (let i = j + 1; i < n; i++) {
      const li = i * n;
      let v = a[li + j]!;
      for (let k = 0; k < j; k++) v -= l[li + k]! * l[lj + k]!;
      l[li + j] = v / djj;
    }
  }
  return l;
}

/** Solves A X = B for X given A's Cholesky factor `l` (n×n); B is n×m row-major and is overwritten by X. */
export function choleskySolve(l: Float64Array, n: number, b: Float64Array, m: number): Float64Array {
  if (b.length !== n * m) throw new Error(`choleskySolve: right-hand side has ${b.length} values but ${n}x${m} needs ${n * m}.`);
  // L Y = B
  for (let i = 0; i < n; i++) {
    const li = i * n;
    for (let k = 0; k < i; k++) {
      const lik = l[li + k]!;
      if (lik === 0) continue;
      for (let c = 0; c < m; c++) b[i * m + c]! -= lik * b[k * m + c]!;
    }
    const inv = 1 / l[li + i]!;
    for (let c = 0; c < m; c++) b[i * m + c]! *= inv;
  }
  // Lᵀ X = Y
  for (let i = n - 1; i >= 0; i--) {
    for (let k = i + 1; k < n; k++) {
      const lki = l[k * n + i]!;
      if (lki === 0) continue;
      for (let c = 0; c < m; c++) b[i * m + c]! -= lki * b[k * m + c]!;
    }
    const inv = 1 / l[i * n + i]!;
    for (let c = 0; c < m; c++) b[i * m + c]! *= inv;
  }
  return b;
}

/** A thin SVD X = U diag(s) Vᵀ of an n×d matrix, keeping k singular values. */
export interface ThinSvd {
  k: number;
  /** n×k left singular vectors, row-major (left out for n > d with `{ u: false }`). */
  u?: Float64Array;
  /** k singular values, descending. */
  s: Float64Array;
  /** For n > d: the right singular vectors as rows (row c, `d` values, belongs to `s[c]`). */
  v?: Float64Array;
}

/**
 * Thin SVD of a row-major n×d matrix by the Gram-matrix trick: for n > d the eigenvectors V of XᵀX give
 * U = XV/s, keeping the singular values above `tol` (the rank, as LogME's reference `truncated_svd`); for
 * n ≤ d the eigenvectors of XXᵀ are U directly, all n kept (as NumPy's `svd(full_matrices=False)`).
 */
export function thinSvd(x: ArrayLike<number>, n: number, d: number, opts: { tol?: number; u?: boolean } = {}): ThinSvd {
  const tol = opts.tol ?? 1e-10;
  if (x.length !== n * d) throw new Error(`thinSvd: ${x.length} values but ${n}x${d} needs ${n * d}.`);
  if (n > d) {
    const { values, vectors } = symmetricEigen(gramColumns(x, n, d), d);
    const order: number[] = [];
    for (let j = d - 1; j >= 0; j--) if (Math.sqrt(Math.max(values[j]!, 0)) > tol) order.push(j);
    const k = order.length;
    const s = Float64Array.from(order, (j) => Math.sqrt(values[j]!));
    const v = new Float64Array(k * d);
    order.forEach((j, c) => {
      v.set(vectors.subarray(j * d, (j + 1) * d), c * d);
    });
    if (opts.u === false) return { k, s, v };
    const u = new Float64Array(n * k);
    for (let r = 0; r < n; r++) {
      for (let c = 0; c < k; c++) {
        let acc = 0;
        for (let i = 0; i < d; i++) acc += x[r * d + i]! * v[c * d + i]!;
        u[r * k + c] = acc / s[c]!;
      }
    }
    return { k, u, s, v };
  }
  const { values, vectors } = symmetricEigen(gramRows(x, n, d), n);
  const u = new Float64Array(n * n);
  const s = new Float64Array(n);
  for (let c = 0; c < n; c++) {
    const j = n - 1 - c;
    s[c] = Math.sqrt(Math.max(values[j]!, 0));
    for (let r = 0; r < n; r++) u[r * n + c] = vectors[j * n + r]!;
  }
  return { k: n, u, s };
}
