/** Small helpers shared by shape inference and gradient rules. */
import type { Dim, Node, ValueInfo } from './graph.js';
import type { TypeShape } from './op-registry.js';

/** NumPy-style broadcast of two shapes, with symbolic dims. */
export function broadcastShapes(a: Dim[], b: Dim[], where: string): Dim[] {
  const n = Math.max(a.length, b.length);
  const out: Dim[] = [];
  for (let i = 0; i < n; i++) {
    // axes missing on the left broadcast as 1; a null (unknown) dimension stays unknown
    const x = i < n - a.length ? 1 : a[a.length - n + i]!;
    const y = i < n - b.length ? 1 : b[b.length - n + i]!;
    if (x === y) out.push(x);
    else if (x === 1) out.push(y);
    else if (y === 1) out.push(x);
    else if (typeof x === 'number' && typeof y === 'number')
      throw new Error(`${where}: shapes [${a}] and [${b}] do not broadcast (axis ${i}: ${x} vs ${y}). Check the input sizes.`);
    else out.push(typeof x === 'number' ? x : typeof y === 'number' ? y : x);
  }
  return out;
}

/** Broadcast over several inputs; undefined when any rank is unknown. */
export function broadcastAll(inputs: (ValueInfo | undefined)[], where: string): Dim[] | undefined {
  let s: Dim[] | undefined = [];
  for (const v of inputs) {
    if (!v?.shape) return undefined;
    s = broadcastShapes(s, v.shape, where);
  }
  return s;
}

/** Same dtype and shape as input 0. */
export function sameAsInput(i = 0) {
  return (_n: Node, ins: (ValueInfo | undefined)[]): TypeShape[] => [{ dtype: ins[i]?.dtype ?? 'float32', shape: ins[i]?.shape }];
}

/** Normalizes a possibly negative axis. */
export function normAxis(axis: number, rank: number): number {
  return axis < 0 ? axis + rank : axis;
}

/**
 * Axes along which a value of shape `from` (the broadcast result) must be summed to get back
 * `to` (an operand of the broadcast): leading extra axes, and axes where `to` has 1 and `from` does not.
 */
export function broadcastReduceAxes(from: Dim[], to: Dim[]): { lead: number[]; keep: number[] } {
  const extra = from.length - to.length;
  const lead: number[] = [];
  for (let i = 0; i < extra; i++) lead.push(i);
  const keep: number[] = [];
  for (let i = 0; i < to.length; i++) if (to[i] === 1 && from[i + extra] !== 1) keep.push(i + extra);
  return { lead, keep };
}

export function desc(n: Node): string {
  return `node "${n.name}" (${n.op})`;
}

export function requireShape(v: ValueInfo | undefined, n: Node, what: string): Dim[] {
  if (!v?.shape)
    throw new Error(
      `${desc(n)}: the shape of ${what} is unknown; graft needs it to build gradients. Give the model input a static shape (e.g. [N,3,224,224]).`,
    );
  return v.shape;
}

export function staticDims(shape: Dim[], n: Node, what: string, axes?: number[]): number[] {
  const idx = axes ?? shape.map((_, i) => i);
  return idx.map((i) => {
    const d = shape[i];
    if (typeof d !== 'number')
      throw new Error(`${desc(n)}: dimension ${i} of ${what} is not static ([${shape}]); graft needs it. Give the model input a static spatial size.`);
    return d;
  });
}
