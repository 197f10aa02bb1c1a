/**
 * The k-nearest-neighbour baseline: leave-one-out accuracy of a cosine-similarity kNN vote on the features.
 * No training, one hyper-parameter (k); a 2025 study of 23 transferability metrics found that this plain
 * baseline beats most of them, which is why `graft rank` always shows it.
 */

/** Options of {@link knnAccuracy}. */
export interface KnnOptions {
  /** Neighbours that vote (default 5; fewer when there are fewer other rows). */
  k?: number;
}

/**
 * Leave-one-out kNN accuracy: each row is classified by the majority label of its `k` most cosine-similar
 * other rows (a tie goes to the label with the larger summed similarity, then the smaller label).
 * Zero rows have similarity 0 to everything.
 * @returns the fraction of rows whose vote is their own label.
 */
export function knnAccuracy(x: ArrayLike<number>, n: number, d: number, labels: ArrayLike<number>, opts: KnnOptions = {}): number {
  if (x.length !== n * d) throw new Error(`knnAccuracy: ${x.length} values but ${n}x${d} needs ${n * d}.`);
  if (labels.length !== n) throw new Error(`knnAccuracy: ${labels.length} labels for ${n} rows; pass one label per row.`);
  const k = Math.min(opts.k ?? 5, n - 1);
  if (!(Number.isInteger(k) && k >= 1)) throw new Error(`knnAccuracy: needs k >= 1 and at least 2 rows (k=${opts.k ?? 5}, ${n} rows).`);
  // unit rows
  const u = new Float64Array(n * d);
  for (let i = 0; i < n; i++) {
    let s = 0;
    for (let j = 0; j < d; j++) s += x[i * d + j]! ** 2;
    const inv = s > 0 ? 1 / Math.sqrt(s) : 0;
    for (let j = 0; j < d; j++) u[i * d + j] = x[i * d + j]! * inv;
  }
  const sims = new Float64Array(n);
  const best = new Int32Array(k);
  const votes = new Map<number, { count: number; sim: number }>();
  let right = 0;
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < n; j++) {
      if (j === i) {
        sims[j] = -Infinity;
        continue;
      }
      let s = 0;
      for (let t = 0; t < d; t++) s += u[i * d + t]! * u[j * d + t]!;
      sims[j] = s;
    }
    // the k largest, by insertion (k is small); ties keep the lower index
    let filled = 0;
    for (let j = 0; j < n; j++) {
      if (j === i) continue;
      const s = sims[j]!;
      if (filled === k && s <= sims[best[k - 1]!]!) continue;
      let p = Math.min(filled, k - 1);
      while (p > 0 && sims[best[p - 1]!]! < s) {
        best[p] = best[p - 1]!;
        p--;
      }
      best[p] = j;
      if (filled < k) filled++;
    }
    votes.clear();
    for (let t = 0; t < filled; t++) {
      const l = labels[best[t]!]!;
      const v = votes.get(l) ?? { count: 0, sim: 0 };
      v.count++;
      v.sim += sims[best[t]!]!;
      votes.set(l, v);
    }
    let pick = -1;
    let pv = { count: -1, sim: -Infinity };
    for (const [l, v] of votes)
      if (v.count > pv.count || (v.count === pv.count && (v.sim > pv.sim || (v.sim === pv.sim && l < pick)))) {
        pick = l;
        pv = v;
      }
    if (pick === labels[i]) right++;
  }
  return right / n;
}
