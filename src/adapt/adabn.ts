/**
 * AdaBN (Li et al., 2016): re-estimate every BatchNormalization's statistics on target-domain data,
 * leaving all weights alone. Like PyTorch's cumulative moving average (momentum=None): the running
 * mean/var become the plain average over batches of each batch's mean and unbiased variance.
 */
import type { Model } from '../ir/model.js';
import { createSession, ort, runChecked } from '../runtime/session.js';
import { BatchBuffers, type BatchSource, batches } from '../step/batches.js';
import { toTrainingGraph } from '../step/mode.js';

export interface AdaBnOptions {
  batchSize?: number;
  /** Use at most this many samples (the first ones). */
  maxSamples?: number;
}

/** Returns a copy of `model` whose BatchNormalization statistics are estimated on `target`. */
export async function adaBN(model: Model, target: BatchSource, opts: AdaBnOptions = {}): Promise<Model> {
  const m = model.clone();
  const g = m.graph;
  const bns = g.nodes.filter((n) => n.op === 'BatchNormalization');
  if (bns.length === 0) throw new Error('AdaBN needs BatchNormalization layers, and this model has none. Use another adaptation method (e.g. CORAL or MCC).');
  if (target.length === 0) throw new Error('AdaBN needs target samples, and the target set is empty.');
  const probe = m.clone();
  for (const n of probe.graph.nodes) if (n.op === 'BatchNormalization') n.attrs.momentum = 0; // updated stat = batch stat
  const { runningStats } = toTrainingGraph(probe.graph, probe.opset, { trainBN: () => true });
  probe.graph.outputs = runningStats.map((s) => ({ name: s.output, dtype: 'float32' as const }));
  probe.graph.prune();
  const session = await createSession(probe);
  const sums = runningStats.map((s) => new Float64Array(g.initializers.get(s.input)!.size));
  const bufs = new BatchBuffers(target.sampleShape);
  const n = Math.min(target.length, opts.maxSamples ?? target.length);
  const src: BatchSource = n < target.length ? { ...target, length: n, sampleShape: target.sampleShape, fill: target.fill.bind(target) } : target;
  let count = 0;
  for await (const b of batches(src, bufs, { batchSize: opts.batchSize ?? 128, seed: 0, epoch: 0, shuffle: false })) {
    if (b.size < 2) continue; // batch statistics of one sample are undefined
    const feeds: Record<string, ort.Tensor> = { [session.inputNames[0]!]: new ort.Tensor('float32', b.x.data as Float32Array, [...b.x.dims]) };
    const out = await runChecked(session, feeds, undefined, { what: 'AdaBN' });
    runningStats.forEach((s, i) => {
      const v = out[s.output]!.data as Float32Array;
      const acc = sums[i]!;
      for (let j = 0; j < acc.length; j++) acc[j]! += v[j]!;
    });
    count++;
  }
  await session.release();
  runningStats.forEach((s, i) => {
    const t = g.initializers.get(s.input)!.clone();
    const d = t.data as Float32Array;
    for (let j = 0; j < d.length; j++) d[j] = sums[i]![j]! / count;
    g.initializers.set(s.input, t);
  });
  return m;
}
