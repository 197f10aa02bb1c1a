/** `nn.Sequential`: children run in order, named '0', '1', … (or by the keys of an object, like an OrderedDict). */
import type { Emitter } from '../ir/emit.js';
import type { Rng } from '../tensor.js';
import { join, Module } from './module.js';

/** Runs its children in order; parameters are named `${prefix}.${childName}.…` like PyTorch. */
export class Sequential extends Module {
  readonly kind: string = 'Sequential';
  private readonly named: [string, Module][];

  constructor(children: Module[] | Record<string, Module> | [string, Module][]) {
    super();
    if (Array.isArray(children)) {
      this.named = children.map((c, i): [string, Module] => (Array.isArray(c) ? [c[0], c[1]] : [String(i), c]));
    } else this.named = Object.entries(children);
    const seen = new Set<string>();
    for (const [name, m] of this.named) {
      if (!(m instanceof Module)) throw new Error(`Sequential: child "${name}" is not a module (got ${typeof m}). Pass modules such as linear(…) or relu().`);
      if (!name || name.includes('.')) throw new Error(`Sequential: child name "${name}" must be non-empty and contain no '.'.`);
      if (seen.has(name)) throw new Error(`Sequential: two children are named "${name}"; names must be unique.`);
      seen.add(name);
    }
  }

  override children(): [string, Module][] {
    return this.named;
  }

  /** The child with this name ('0', 'fc', …); throws naming the available children. */
  get(name: string | number): Module {
    const hit = this.named.find(([n]) => n === String(name));
    if (!hit) throw new Error(`${this.kind}: no child "${name}"; it has ${this.named.map(([n]) => n).join(', ') || 'no children'}.`);
    return hit[1];
  }

  get length(): number {
    return this.named.length;
  }

  emit(e: Emitter, x: string, prefix: string, rng: Rng): string {
    let y = x;
    for (const [name, m] of this.named) y = m.emit(e, y, join(prefix, name), rng);
    return y;
  }
}

/**
 * `nn.Sequential(...)`. Either modules (named '0', '1', …) or one object of named children
 * (`sequential({ backbone, head })`, like an OrderedDict).
 */
export function sequential(...children: Module[]): Sequential;
export function sequential(children: Record<string, Module>): Sequential;
export function sequential(...args: unknown[]): Sequential {
  if (args.length === 1 && !(args[0] instanceof Module) && typeof args[0] === 'object' && args[0] !== null)
    return new Sequential(args[0] as Record<string, Module>);
  return new Sequential(args as Module[]);
}
