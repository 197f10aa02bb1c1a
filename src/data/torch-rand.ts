/**
 * `torch.rand` of a CPU `torch.Generator().manual_seed(seed)`, bit for bit: a Mersenne Twister (MT19937, 32-bit
 * seed initialisation) whose 32-bit outputs become floats as `(u & 0xFFFFFF) / 2^24`, drawn serially. graft uses it
 * for the style-shift textures so its target domain is the very one the PyTorch reference (shared/ref) trains on.
 */

const N = 624;
const M = 397;

/** A Mersenne Twister stream equal to PyTorch's CPU generator after `manual_seed(seed)`. */
export class TorchRand {
  private readonly mt = new Uint32Array(N);
  private i = N;

  constructor(seed: number) {
    if (!Number.isInteger(seed) || seed < 0 || seed > 0xffffffff)
      throw new Error(`TorchRand: seed ${seed} must be an integer in [0, 2^32); pass a non-negative seed.`);
    this.mt[0] = seed >>> 0;
    for (let k = 1; k < N; k++) {
      const prev = this.mt[k - 1]! ^ (this.mt[k - 1]! >>> 30);
      this.mt[k] = (Math.imul(1812433253, prev) + k) >>> 0;
    }
  }

  private twist(): void {
    const mt = this.mt;
    for (let k = 0; k < N; k++) {
      const y = (mt[k]! & 0x80000000) | (mt[(k + 1) % N]! & 0x7fffffff);
      mt[k] = mt[(k + M) % N]! ^ (y >>> 1) ^ (y & 1 ? 0x9908b0df : 0);
    }
    this.i = 0;
  }

  /** The next 32-bit output. */
  nextU32(): number {
    if (this.i >= N) this.twist();
    let y = this.mt[this.i++]!;
    y ^= y >>> 11;
    y ^= (y << 7) & 0x9d2c5680;
    y ^= (y << 15) & 0xefc60000;
    y ^= y >>> 18;
    return y >>> 0;
  }

  /** The next `torch.rand` float32 value in [0, 1). */
  next(): number {
    return (this.nextU32() & 0xffffff) / 16777216;
  }
}
