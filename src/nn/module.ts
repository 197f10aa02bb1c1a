/**
 * The module abstraction of graft's PyTorch-like builder: a module emits its forward computation as
 * standard ONNX ops into an {@link Emitter}, naming its parameters like PyTorch's state_dict keys.
 */
import { Emitter } from '../ir/emit.js';
import { type Dim, Graph } from '../ir/graph.js';
import { DEFAULT_OPSET, Model } from '../ir/model.js';
import { setOutput } from '../ir/surgery.js';
import { registerStandardOps } from '../ops/index.js';
import { Rng, type Tensor } from '../tensor.js';

/** Options for {@link Module.build}. */
export interface BuildOptions {
  /** Input shape, e.g. `['N', 1, 28, 28]` (symbolic batch). Defaults to the module's `defaultInputShape`. */
  inputShape?: Dim[];
  /** Seed of the parameter initialization (default 0). Same seed, same weights. */
  seed?: number;
  /** Graph input name (default 'input'). */
  inputName?: string;
  /** Graph output name (default 'logits'). */
  outputName?: string;
  /** Default-domain opset (default 17). */
  opset?: number;
  /** Graph name (default: the module's kind). */
  name?: string;
}

/** Joins a state_dict prefix and a child/parameter name: `join('layer1.0', 'conv1')` → 'layer1.0.conv1'. */
export function join(prefix: string, name: string): string {
  return prefix ? `${prefix}.${name}` : name;
}

/** How a module is named in error messages: `Linear "fc"` (or `Linear (top level)`). */
export function where(kind: string, prefix: string): string {
  return prefix ? `${kind} "${prefix}"` : `${kind} (top-level module)`;
}

/**
 * Adds a parameter (or buffer) initializer named `name`; throws if the graph already has that name
 * (two modules with the same prefix, or a head whose prefix collides with the backbone).
 */
export function addParam(e: Emitter, name: string, t: Tensor, owner: string): string {
  if (e.graph.has(name))
    throw new Error(
      `${owner}: parameter "${name}" already exists in the graph. Two modules share the prefix; rename the child (or pass a different \`prefix\` to replaceHead).`,
    );
  return e.graph.addInitializer(name, t);
}

/** Runs `fn` with the emitter's node-name scope set to `prefix/` so node names follow the module tree. */
export function scoped<T>(e: Emitter, prefix: string, fn: () => T): T {
  const saved = e.prefix;
  if (prefix) e.prefix = `${prefix}/`;
  try {
    return fn();
  } finally {
    e.prefix = saved;
  }
}

/**
 * A building block. Subclasses implement {@link Module.emit}; containers also list their
 * {@link Module.children}. Modules are descriptions: building twice makes two independent models.
 */
export abstract class Module {
  /** The PyTorch class this mirrors, e.g. 'Conv2d'. */
  abstract readonly kind: string;
  /** Input shape used by {@link Module.build} when none is given (architectures set it). */
  defaultInputShape?: Dim[];

  /**
   * Emits the forward computation on value `x` and returns the output value name.
   * `prefix` is the module's state_dict path ('' at the top, 'layer1.0.conv1' deeper); parameters are
   * named `${prefix}.weight` etc. `rng` draws initial values, in emission order.
   */
  abstract emit(e: Emitter, x: string, prefix: string, rng: Rng): string;

  /** Named children (containers); empty for leaf layers. */
  children(): [string, Module][] {
    return [];
  }

  /** Constructor arguments as PyTorch prints them, e.g. '1, 32, kernel_size=3'. */
  protected extraRepr(): string {
    return '';
  }

  /** A PyTorch-style printout of the module tree. */
  toString(): string {
    const kids = this.children();
    if (!kids.length) return `${this.kind}(${this.extraRepr()})`;
    const inner = kids.map(([n, m]) => `(${n}): ${m.toString().replace(/\n/g, '\n  ')}`).join('\n  ');
    return `${this.kind}(\n  ${inner}\n)`;
  }

  /**
   * Builds a standalone inference model (opset 17 by default): one float32 graph input, the forward
   * graph with parameters as initializers, and one graph output, with shapes inferred as it goes.
   */
  build(opts: BuildOptions = {}): Model {
    const inputShape = opts.inputShape ?? this.defaultInputShape;
    if (!inputShape) throw new Error(`${this.kind}.build: no input shape. Pass { inputShape: ['N', C, H, W] } (or ['N', features] for an MLP).`);
    const opset = opts.opset ?? DEFAULT_OPSET;
    const inputName = opts.inputName ?? 'input';
    const outputName = opts.outputName ?? 'logits';
    if (inputName === outputName) throw new Error(`${this.kind}.build: inputName and outputName are both "${inputName}"; give them different names.`);
    registerStandardOps();
    const g = new Graph();
    g.name = opts.name ?? this.kind;
    g.inputs.push({ name: inputName, dtype: 'float32', shape: [...inputShape] });
    const e = new Emitter(g, opset);
    const y = this.emit(e, inputName, '', new Rng(opts.seed ?? 0));
    setOutput(e, y, outputName, `${this.kind}.build`);
    const m = new Model(g, opset);
    m.metadata['graft.builder'] = this.kind;
    return m;
  }
}
