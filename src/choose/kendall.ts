/**
 * Kendall's rank correlation τ-b between two score lists (how well a transferability score orders backbones
 * as their accuracy after training does): +1 same order, −1 reversed, ties counted as in SciPy's
 * `kendalltau` (τ-b).
 */

/**
 * Kendall τ-b of paired values `a` and `b`.
 * @returns NaN when either list is constant (no order to compare).
 * @throws when the lists differ in length or hold fewer than two pairs.
 */
export function kendallTau(a: ArrayLike<number>, b: ArrayLike<number>): number {
  const n = a.length;
  if (b.length !== n) throw new Error(`kendallTau: ${n} values against ${b.length}; pass paired lists of equal length.`);
  if (n < 2) throw new Error(`kendallTau: needs at least two pairs, got ${n}.`);
  let concordant = 0;
  let discordant = 0;
  let tiesA = 0;
  let tiesB = 0;
  for (let i = 0; i < n; i++)
    for (let j = i + 1; j < n; j++) {
      const da = Math.sign(a[i]! - a[j]!);
      const db = Math.sign(b[i]! - b[j]!);
      if (da === 0 && db === 0) continue;
      if (da === 0) tiesA++;
      else if (db === 0) tiesB++;
      else if (da === db) concordant++;
      else discordant++;
    }
  const denom = Math.sqrt((concordant + discordant + tiesA) * (concordant + discordant + tiesB));
  return denom === 0 ? Number.NaN : (concordant - discordant) / denom;
}
