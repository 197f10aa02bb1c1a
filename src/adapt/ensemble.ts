/**
 * An ensemble of adapted models as ONE standard ONNX model: every member's graph side by side on the shared
 * input, each member's logits through Softmax, the mean of those probabilities, and its log as the model's
 * output. softmax(log(mean p)) = mean p, so `toInferenceModel`'s probabilities output (and `graft predict`,
 * `graft eval`, `graft serve`) gives exactly the averaged softmax; the graph uses only Softmax, Sum, Mul, Add
 * and Log beside the members' own ops. `adapt --method auto --ensemble k` exports the top-k candidates this way.
 */
import { Graph } from '../ir/graph.js';
import { Model } from '../ir/model.js';
import { Tensor } from '../tensor.js';

/** Added to the mean probability before the log, so a class that every member rules out has a finite logit. */
export const ENSEMBLE_EPS = 1e-12;

/** The prefix of member i's values and nodes in the ensemble graph. */
export const memberPrefix = (i: number) => `ensemble${i}/`;

/**
 * One forward model (x → log of the mean softmax) from forward models (x → logits) that read the same input and
 * predict the same classes. Values of member i are renamed `ensemble<i>/<name>`; the input keeps its name and the
 * output takes the first member's output name. Metadata comes from the first member without `graft.cut` (the
 * members' feature cuts are different values), plus `graft.ensemble` (the member count).
 */
export function ensembleModel(models: Model[]): Model {
  if (models.length === 0) throw new Error('ensembleModel: no models given; pass at least one forward model (x → logits).');
  if (models.length === 1) return models[0]!.clone();
  const first = models[0]!.graph;
  const inputOf = (g: Graph) => g.inputs.filter((v) => !g.initializers.has(v.name));
  const input = inputOf(first);
  if (input.length !== 1) throw new Error(`ensembleModel: each member must have one data input; the first has ${input.length}.`);
  const inName = input[0]!.name;
  const classesOf = (g: Graph) => g.info(g.outputs[0]?.name ?? '')?.shape?.at(-1);
  const g = new Graph();
  g.name = 'ensemble';
  g.inputs = [{ ...input[0]!, shape: input[0]!.shape && [...input[0]!.shape] }];
  const probs: string[] = [];
  models.forEach((m, i) => {
    const mg = m.graph;
    const ins = inputOf(mg);
    if (ins.length !== 1 || ins[0]!.name !== inName)
      throw new Error(
        `ensembleModel: member ${i} reads ${ins.map((v) => `"${v.name}"`).join(', ') || 'no input'}, the first member "${inName}"; ensemble models of one architecture (one input).`,
      );
    if (mg.outputs.length < 1) throw new Error(`ensembleModel: member ${i} has no output; pass forward models (x → logits).`);
    if (classesOf(mg) !== classesOf(first))
      throw new Error(`ensembleModel: member ${i} predicts ${classesOf(mg)} classes, the first member ${classesOf(first)}; ensemble models of one task.`);
    if (mg.nodes.some((n) => Object.values(n.attrs).some((a) => a instanceof Graph)))
      throw new Error(`ensembleModel: member ${i} has a control-flow subgraph (If/Loop/Scan), which ensembling does not rename; export members without one.`);
    const p = memberPrefix(i);
    const ren = (name: string) => (name === '' || name === inName ? name : p + name);
    for (const [k, t] of mg.initializers) g.initializers.set(ren(k), t);
    for (const [k, v] of mg.valueInfo) if (k !== inName) g.valueInfo.set(ren(k), { ...v, name: ren(k), shape: v.shape && [...v.shape] });
    for (const n of mg.nodes) g.nodes.push({ ...n, name: p + n.name, inputs: n.inputs.map(ren), outputs: n.outputs.map(ren), attrs: { ...n.attrs } });
    const pr = `${p}probabilities`;
    g.addNode('Softmax', [ren(mg.outputs[0]!.name)], [pr], { axis: -1 }, `${p}softmax`);
    probs.push(pr);
  });
  const inv = g.addInitializer('ensemble/inv_count', Tensor.scalar(1 / models.length));
  const eps = g.addInitializer('ensemble/eps', Tensor.scalar(ENSEMBLE_EPS));
  g.addNode('Sum', probs, ['ensemble/sum'], {}, 'ensemble/sum');
  g.addNode('Mul', ['ensemble/sum', inv], ['ensemble/mean'], {}, 'ensemble/mean');
  g.addNode('Add', ['ensemble/mean', eps], ['ensemble/mean_eps'], {}, 'ensemble/mean_eps');
  const outName = first.outputs[0]!.name;
  g.addNode('Log', ['ensemble/mean_eps'], [outName], {}, 'ensemble/log');
  g.outputs = [{ name: outName, dtype: 'float32', shape: first.info(first.outputs[0]!.name)?.shape }];
  const m = new Model(g, Math.max(...models.map((x) => x.opset)));
  m.otherOpsets = [...models[0]!.otherOpsets];
  const { 'graft.cut': _cut, ...meta } = models[0]!.metadata;
  m.metadata = { ...meta, 'graft.ensemble': String(models.length) };
  return m;
}
