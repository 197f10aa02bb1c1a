/**
 * Reads models of opsets 7–12 (the ONNX Model Zoo's classifiers) as opset 13: the ops whose signature changed
 * between them are rewritten to their opset-13 form, with the same results — attributes that became inputs
 * (Clip, Pad, Slice, Dropout, Squeeze, Unsqueeze, ReduceSum, Split, TopK) become constant initializers, the
 * removed BatchNormalization `spatial` and `is_test` attributes are dropped, Softmax's old "flatten to 2-D at
 * `axis`" rule is kept with Flatten/Reshape where the rank does not make it the new one, and Resize-10's
 * inputs and coordinate rule are spelled out. Every other op reads the same at 13; shape inference still
 * names any op graft does not know.
 */
import type { Graph, Node } from '../ir/graph.js';
import { Tensor } from '../tensor.js';

/** The oldest opset graft upgrades (broadcasting as in opset 13 starts at 7). */
export const MIN_UPGRADE_OPSET = 7;
/** The opset an upgraded model targets. */
export const UPGRADE_TARGET_OPSET = 13;

/** Rewrites `graph` (of default-domain opset `from`, 7–12) in place to its opset-13 form. @throws naming a node whose form has no opset-13 equivalent. */
export function upgradeToOpset13(graph: Graph, from: number, where: string): void {
  const out: Node[] = [];
  const rank = ranks(graph);
  const init = (base: string, t: Tensor) => graph.addInitializer(graph.fresh(base), t);
  const i64 = (n: Node, what: string, v: number[]) => init(`${n.name}.${what}`, Tensor.i64([v.length], v));
  const f32 = (n: Node, what: string, v: number) => init(`${n.name}.${what}`, Tensor.f32([], [v]));
  const ints = (n: Node, key: string) => n.attrs[key] as number[] | undefined;
  for (const n of graph.nodes) {
    if (n.domain && n.domain !== 'ai.onnx') {
      out.push(n);
      continue;
    }
    switch (n.op) {
      case 'BatchNormalization':
        if (from < 9 && n.attrs.spatial === 0)
          throw new Error(
            `${where}: node "${n.name}" is a BatchNormalization with spatial=0 (per-activation statistics), which opset 9 removed; graft cannot read it. Re-export the model with opset ≥ 13.`,
          );
        delete n.attrs.spatial;
        delete n.attrs.is_test;
        delete n.attrs.consumed_inputs;
        break;
      case 'Clip':
        if (from < 11) {
          const min = (n.attrs.min as number | undefined) ?? -3.4028234663852886e38;
          const max = (n.attrs.max as number | undefined) ?? 3.4028234663852886e38;
          n.inputs = [n.inputs[0]!, f32(n, 'min', min), f32(n, 'max', max)];
          delete n.attrs.min;
          delete n.attrs.max;
        }
        break;
      case 'Dropout':
        if (from < 12) {
          const ratio = (n.attrs.ratio as number | undefined) ?? 0.5;
          n.inputs = [n.inputs[0]!, f32(n, 'ratio', ratio)];
          delete n.attrs.ratio;
          delete n.attrs.is_test;
          n.outputs = n.outputs.slice(0, 1); // the old mask (of the input's type) is never read at inference
        }
        break;
      case 'Pad':
        if (from < 11) {
          n.inputs = [n.inputs[0]!, i64(n, 'pads', ints(n, 'pads') ?? ints(n, 'paddings') ?? []), f32(n, 'value', (n.attrs.value as number | undefined) ?? 0)];
          delete n.attrs.pads;
          delete n.attrs.paddings;
          delete n.attrs.value;
        }
        break;
      case 'Slice':
        if (from < 10) {
          const starts = ints(n, 'starts') ?? [];
          const inputs = [n.inputs[0]!, i64(n, 'starts', starts), i64(n, 'ends', ints(n, 'ends') ?? [])];
          if (ints(n, 'axes')) inputs.push(i64(n, 'axes', ints(n, 'axes')!));
          n.inputs = inputs;
          delete n.attrs.starts;
          delete n.attrs.ends;
          delete n.attrs.axes;
        }
        break;
      case 'Squeeze':
      case 'Unsqueeze':
      case 'ReduceSum':
        if (ints(n, 'axes')) n.inputs = [n.inputs[0]!, i64(n, 'axes', ints(n, 'axes')!)];
        delete n.attrs.axes;
        break;
      case 'Split':
        if (ints(n, 'split')) n.inputs = [n.inputs[0]!, i64(n, 'split', ints(n, 'split')!)];
        delete n.attrs.split;
        break;
      case 'TopK':
        if (from < 10) {
          n.inputs = [n.inputs[0]!, i64(n, 'k', [n.attrs.k as number])];
          delete n.attrs.k;
        }
        break;
      case 'Resize':
        if (from < 11) {
          // Resize-10: (X, scales), asymmetric coordinates; nearest rounds down
          n.inputs = [n.inputs[0]!, '', n.inputs[1]!];
          n.attrs.coordinate_transformation_mode = 'asymmetric';
          if ((n.attrs.mode ?? 'nearest') === 'nearest') n.attrs.nearest_mode = 'floor';
        }
        break;
      case 'Softmax':
      case 'LogSoftmax':
      case 'Hardmax': {
        const r = rank.get(n.inputs[0]!);
        const axis = (n.attrs.axis as number | undefined) ?? 1;
        if (r !== undefined && (axis === r - 1 || axis === -1)) {
          n.attrs.axis = -1; // flattening at the last axis is the new rule
          break;
        }
        // the old rule: coerce to 2-D at `axis`, normalise the rows, and restore the shape
        const [x, y] = [n.inputs[0]!, n.outputs[0]!];
        const flat = graph.fresh(`${n.name}.flat`);
        const soft = graph.fresh(`${n.name}.2d`);
        const shape = graph.fresh(`${n.name}.shape`);
        out.push({ op: 'Flatten', inputs: [x], outputs: [flat], attrs: { axis }, name: graph.fresh(`${n.name}/flatten`) });
        out.push({ op: 'Shape', inputs: [x], outputs: [shape], attrs: {}, name: graph.fresh(`${n.name}/shape`) });
        out.push({ ...n, inputs: [flat], outputs: [soft], attrs: { axis: 1 } });
        out.push({ op: 'Reshape', inputs: [soft, shape], outputs: [y], attrs: {}, name: graph.fresh(`${n.name}/reshape`) });
        continue;
      }
    }
    out.push(n);
  }
  graph.nodes = out;
}

/** The ranks the graph declares (inputs, outputs, value_info) and those of initializers. */
function ranks(graph: Graph): Map<string, number> {
  const m = new Map<string, number>();
  for (const v of [...graph.inputs, ...graph.outputs, ...graph.valueInfo.values()]) if (v.shape) m.set(v.name, v.shape.length);
  for (const [k, t] of graph.initializers) m.set(k, t.dims.length);
  return m;
}
