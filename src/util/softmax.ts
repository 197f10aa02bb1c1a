/** The softmax graft applies to a classifier's logits, shared by `graft predict` (train/classify.ts) and the browser bundle (web/). */

/** In-place, numerically stable softmax over each row of length `k`. */
export function softmaxRows(x: Float32Array, k: number): void {
  for (let o = 0; o < x.length; o += k) {
    let m = Number.NEGATIVE_INFINITY;
    for (let j = 0; j < k; j++) m = Math.max(m, x[o + j]!);
    let s = 0;
    for (let j = 0; j < k; j++) s += x[o + j] = Math.exp(x[o + j]! - m);
    for (let j = 0; j < k; j++) x[o + j]! /= s;
  }
}
