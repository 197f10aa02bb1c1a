/**
 * How well `graft adapt --method auto` picks without target labels, on the public shift (MNIST → the demo's
 * style shift; bench/adapt.ts's protocol, optionally shortened): for every seed, every candidate method runs
 * once (autoAdapt), and each validator (SND, entropy, IM) picks one run from the unlabelled target alone. Against
 * the target accuracy (labels used only here, after the fact): how often the pick is within 2 points of the
 * seed's best candidate, the mean regret, and the picked accuracy over seeds next to every fixed method's.
 *
 *
 * Ensembles: every candidate's softmax on the validators' target sample and on the labelled target test set is
 * kept (<out>.probs/seed<s>-<method>.f32), so the ensembles of `--ensemble k` (the mean of the top-k candidates'
 * softmax by the validator; src/adapt/ensemble.ts builds that model) are graded from the same runs: per seed
 * (methods as candidates) and over pooled seeds (method × seed as candidates).
 *
 * Method × seed pools (`--method auto --seeds a,b`): the seeds split, in order, into disjoint pools (every size that
 * divides the seed count into at least two pools: 6 seeds → 3 pools of 2, 2 pools of 3), one auto trial per pool,
 * graded against every fixed method's mean ± sd over the same seeds (each of its seeds one trial).
 *
 * Usage: node --import tsx bench/adapt-auto.ts [--candidates source-only,adabn,coral,dan,cdan,mcc,self-training]
 *        [--seeds 0,1,2] [--epochs 2] [--source-samples n] [--select im] [--out runs/bench-adapt-auto.json]
 *        node --import tsx bench/adapt-auto.ts --from runs/bench-adapt-auto.json   (the tables again, from the seeds done so far)
 *        node --import tsx bench/adapt-auto.ts --from runs/s0.json,runs/s1.json,…  (seeds run by separate processes, merged)
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { sampleIndices } from '../src/adapt/data.js';
import {
  type AutoCandidate,
  argmaxBy,
  autoAdapt,
  meanStd,
  parseMethod,
  predictProbabilities,
  probabilityScores,
  type SelectBy,
  unlabelledArrays,
  VALIDATORS,
  validatorScore,
} from '../src/adapt/index.js';
import { subsetOf } from '../src/adapt/run.js';
import { loadMnist } from '../src/data/idx.js';
import { styleShift } from '../src/data/shift.js';
import { smallCNN } from '../src/nn/index.js';
import { saveModel } from '../src/onnx/io.js';
import { ArraySource } from '../src/step/batches.js';

const { values } = parseArgs({
  options: {
    candidates: { type: 'string', default: 'source-only,adabn,coral,dan,cdan,mcc,self-training' },
    seeds: { type: 'string', default: '0,1,2' },
    epochs: { type: 'string', default: '2' },
    'source-samples': { type: 'string' },
    select: { type: 'string', default: 'im' },
    out: { type: 'string', default: 'runs/bench-adapt-auto.json' },
    from: { type: 'string' },
  },
});
const t0 = performance.now();
// --from a.json[,b.json…]: the seeds saved by earlier runs (e.g. two processes side by side), merged
const fromFiles = values.from?.split(',') ?? [];
const savedAll = fromFiles.map((f) => ({ file: f, doc: JSON.parse(fs.readFileSync(f, 'utf8')) }));
for (const { file, doc } of savedAll.slice(1))
  for (const key of ['candidates', 'epochs', 'sourceSamples', 'select'])
    if (JSON.stringify(doc[key]) !== JSON.stringify(savedAll[0]!.doc[key]))
      throw new Error(`--from: ${file} was run with another ${key} than ${savedAll[0]!.file}; merge only runs of one protocol.`);
const saved = savedAll.length
  ? { ...savedAll[0]!.doc, perSeed: savedAll.flatMap((x) => x.doc.perSeed as { seed: number; candidates: AutoCandidate[] }[]) }
  : undefined;
if (saved && new Set(saved.perSeed.map((s: { seed: number }) => s.seed)).size !== saved.perSeed.length)
  throw new Error(`--from: a seed is in more than one file (${fromFiles.join(', ')}); give each seed once.`);
const candidates = saved ? (saved.candidates as ReturnType<typeof parseMethod>[]) : values.candidates.split(',').map((m) => parseMethod(m, '--candidates'));
const seeds: number[] = saved ? saved.perSeed.map((s: { seed: number }) => s.seed) : values.seeds.split(',').map(Number);
const ds = await loadMnist();
const k = saved ? (saved.sourceSamples as number) : values['source-samples'] ? Number(values['source-samples']) : ds.train.y.length;
if (saved) values.epochs = saved.epochs;
const source = new ArraySource(ds.train.x.subarray(0, k * 784), Int32Array.from(ds.train.y).subarray(0, k), [1, 28, 28], 10);
const sourceVal = new ArraySource(ds.test.x, ds.test.y, [1, 28, 28], 10);
const target = unlabelledArrays(styleShift(ds.train.x, { seed: 123 }), [1, 28, 28]);
const targetEval = new ArraySource(styleShift(ds.test.x, { seed: 456 }), ds.test.y, [1, 28, 28], 10);
const load = os.loadavg()[0]!;
// the validators' fixed target sample: the one autoAdapt scores every candidate on
const sample = subsetOf(target, sampleIndices(target.length, 1000, 0));
const probsDir = `${values.out}.probs`;
// a saved seed's softmax lies beside the file it was saved in
const probsDirOf = new Map<number, string>(savedAll.flatMap((x) => x.doc.perSeed.map((s: { seed: number }) => [s.seed, `${x.file}.probs`] as const)));
const probFile = (seed: number, method: string) => path.join(probsDirOf.get(seed) ?? probsDir, `seed${seed}-${method}.f32`);
const select = (saved?.select ?? values.select) as SelectBy;

const perSeed: { seed: number; candidates: AutoCandidate[] }[] = saved?.perSeed ?? [];
for (const seed of saved ? [] : seeds) {
  const r = await autoAdapt({
    model: (s) => smallCNN({ classes: 10 }).build({ inputShape: ['N', 1, 28, 28], seed: s }),
    candidates,
    seeds: [seed],
    source,
    sourceVal,
    target,
    targetEval,
    epochs: Number(values.epochs),
    batchSize: 64,
    lr: 0.01,
    select,
    onRun: async (x) => {
      // the softmax on the validators' sample, then on the labelled target test set (for the ensembles below)
      const a = await predictProbabilities(x.model, sample);
      const b = await predictProbabilities(x.model, targetEval);
      fs.mkdirSync(probsDir, { recursive: true });
      fs.writeFileSync(
        probFile(seed, x.method),
        Buffer.concat([Buffer.from(a.p.buffer, a.p.byteOffset, a.p.byteLength), Buffer.from(b.p.buffer, b.p.byteOffset, b.p.byteLength)]),
      );
      // the source-only models, for the AdaBN experiments (which checkpoint, which images)
      if (x.method === 'source-only') {
        saveModel(x.model, path.join(probsDir, `seed${seed}-source-only-selected.onnx`));
        saveModel(x.lastModel, path.join(probsDir, `seed${seed}-source-only-last.onnx`));
        fs.writeFileSync(path.join(probsDir, `seed${seed}-source-only.json`), JSON.stringify({ selected: x.selected, last: x.last, history: x.history }));
      }
      process.stderr.write(
        `[seed ${seed}] ${x.method}: target ${(100 * x.selected.target_acc!).toFixed(1)} % (${x.seconds.toFixed(0)} s, ${((performance.now() - t0) / 1000).toFixed(0)} s total)\n`,
      );
    },
  });
  perSeed.push({ seed, candidates: r.auto.candidates });
  fs.mkdirSync(path.dirname(values.out), { recursive: true });
  fs.writeFileSync(values.out, `${JSON.stringify({ candidates, seeds, epochs: values.epochs, sourceSamples: k, select, perSeed }, null, 2)}\n`);
}

const pct = (x: number) => 100 * x;
const lines = [
  '| validator | pick per seed (target acc %) | within 2 points of the best | mean regret (points) | picked acc, mean ± std over seeds |',
  '|---|---|---|---|---|',
];
for (const v of VALIDATORS) {
  const picks = perSeed.map((s) => s.candidates[argmaxBy(s.candidates, v)]!);
  const regrets = perSeed.map((s, i) => pct(Math.max(...s.candidates.map((c) => c.target_acc!)) - picks[i]!.target_acc!));
  const acc = meanStd(picks.map((p) => pct(p.target_acc!)));
  lines.push(
    `| ${v} | ${picks.map((p) => `${p.method} ${pct(p.target_acc!).toFixed(1)}`).join(' / ')} | ${regrets.filter((r) => r <= 2).length}/${regrets.length} | ${meanStd(regrets).mean.toFixed(1)} | ${acc.mean.toFixed(1)} ± ${acc.std.toFixed(1)} |`,
  );
}
const oracle = meanStd(perSeed.map((s) => pct(Math.max(...s.candidates.map((c) => c.target_acc!)))));
lines.push(`| (best by target labels) | | | 0 | ${oracle.mean.toFixed(1)} ± ${oracle.std.toFixed(1)} |`);
lines.push('', '| fixed method | target acc %, seeds | mean ± std | SND | entropy | IM |', '|---|---|---|---|---|---|');
for (const m of candidates) {
  const cs = perSeed.map((s) => s.candidates.find((c) => c.method === m)!);
  const a = meanStd(cs.map((c) => pct(c.target_acc!)));
  const f = (g: (c: AutoCandidate) => number) => meanStd(cs.map(g)).mean.toFixed(3);
  lines.push(
    `| ${m} | ${cs.map((c) => pct(c.target_acc!).toFixed(1)).join(' / ')} | ${a.mean.toFixed(1)} ± ${a.std.toFixed(1)} | ${f((c) => c.snd)} | ${f((c) => c.target_entropy)} | ${f((c) => c.target_im)} |`,
  );
}

// ensembles: the mean softmax of the top-k candidates by IM (as `--ensemble k` exports it), graded here
const C = 10;
const ns = sample.length;
const ne = targetEval.length;
const yEval = ds.test.y;
const probsOf = (seed: number, method: string) => {
  const buf = fs.readFileSync(probFile(seed, method));
  const f = new Float32Array(buf.buffer, buf.byteOffset, buf.byteLength / 4);
  return { sample: f.subarray(0, ns * C), eval: f.subarray(ns * C, (ns + ne) * C) };
};
const mean = (ps: Float32Array[]) => {
  const out = new Float32Array(ps[0]!.length);
  for (const p of ps) for (let i = 0; i < out.length; i++) out[i]! += p[i]! / ps.length;
  return out;
};
const accOf = (p: Float32Array) => {
  let hit = 0;
  for (let i = 0; i < ne; i++) {
    let arg = 0;
    for (let c = 1; c < C; c++) if (p[i * C + c]! > p[i * C + arg]!) arg = c;
    if (arg === yEval[i]) hit++;
  }
  return hit / ne;
};
type Pooled = AutoCandidate & { probs: { sample: Float32Array; eval: Float32Array } };
/** The top-k of `pool` by IM, ensembled: its target acc and its own IM on the sample. */
const ensembleOf = (pool: Pooled[], kk: number) => {
  const top = [...pool].sort((a, b) => validatorScore('im', b) - validatorScore('im', a)).slice(0, kk);
  const ps = mean(top.map((c) => c.probs.sample));
  return { members: top, acc: accOf(mean(top.map((c) => c.probs.eval))), im: probabilityScores(ps, ns, C).target_im };
};
const poolOf = (ss: typeof perSeed) => ss.flatMap((s) => s.candidates.map((c) => ({ ...c, probs: probsOf(s.seed, c.method) })));
const tag = (c: AutoCandidate, withSeed: boolean) => (withSeed ? `${c.method}/${c.seed}` : c.method);
const ens: string[] = [
  '| auto variant (IM ranks the candidates) | members per trial | target acc % per trial | mean ± std | within 2 points of the best single | mean regret vs the best single |',
  '|---|---|---|---|---|---|',
];
const ensRow = (name: string, trials: { pool: Pooled[]; pick: (pool: Pooled[]) => { members: AutoCandidate[]; acc: number } }[], withSeed: boolean) => {
  const rs = trials.map((t) => ({ ...t.pick(t.pool), best: Math.max(...t.pool.map((c) => c.target_acc!)) }));
  const a = meanStd(rs.map((r) => pct(r.acc)));
  const reg = rs.map((r) => pct(r.best - r.acc));
  ens.push(
    `| ${name} | ${rs.map((r) => r.members.map((c) => tag(c, withSeed)).join('+')).join(' / ')} | ${rs.map((r) => pct(r.acc).toFixed(1)).join(' / ')} | ${a.mean.toFixed(1)} ± ${a.std.toFixed(1)} | ${reg.filter((x) => x <= 2).length}/${reg.length} | ${meanStd(reg).mean.toFixed(1)} |`,
  );
};
const single = (pool: Pooled[]) => {
  const c = pool[argmaxBy(pool, 'im')]!;
  return { members: [c], acc: c.target_acc! };
};
/** The pick or an ensemble of the top 2 or 3, whichever has the highest IM on the sample. */
const bestOf = (pool: Pooled[]) => {
  const opts = [1, 2, 3].map((kk) => ensembleOf(pool, kk));
  return opts.reduce((a, b) => (b.im > a.im ? b : a));
};
if (perSeed.every((s) => s.candidates.every((c) => fs.existsSync(probFile(s.seed, c.method))))) {
  const perTrial = perSeed.map((s) => ({ pool: poolOf([s]) }));
  ensRow(
    'pick (one run)',
    perTrial.map((t) => ({ ...t, pick: single })),
    false,
  );
  for (const kk of [2, 3])
    ensRow(
      `ensemble top-${kk}`,
      perTrial.map((t) => ({ ...t, pick: (p) => ensembleOf(p, kk) })),
      false,
    );
  ensRow(
    'pick or top-2/top-3 ensemble, by its own IM',
    perTrial.map((t) => ({ ...t, pick: bestOf })),
    false,
  );
  // method × seed as candidates (`--method auto --seeds a,b`): the seeds split, in order, into disjoint pools of
  // `size`, one auto trial per pool, so that no run is in two trials
  const fixed = candidates.map((m) => meanStd(perSeed.map((x) => pct(x.candidates.find((c) => c.method === m)!.target_acc!))));
  // the issue's goal: a higher mean and a lower sd than every fixed method (each of its seeds one trial)
  const meets = (accs: number[]) => {
    const a = meanStd(accs);
    return { a, above: fixed.filter((f) => a.mean > f.mean).length, tighter: fixed.filter((f) => a.std < f.std).length };
  };
  const pickAcc = (idx: number[]) => pct(single(poolOf(idx.map((i) => perSeed[i]!))).acc);
  const goal: string[] = [];
  for (let size = 2; size <= perSeed.length / 2; size++) {
    if (perSeed.length % size) continue;
    const pools = Array.from({ length: perSeed.length / size }, (_, i) => ({ pool: poolOf(perSeed.slice(i * size, (i + 1) * size)) }));
    const name = `method × seed, ${pools.length} disjoint pools of ${size} seeds (${candidates.length * size} runs per trial)`;
    ensRow(
      `${name}: pick`,
      pools.map((t) => ({ ...t, pick: single })),
      true,
    );
    ensRow(
      `${name}: ensemble top-2`,
      pools.map((t) => ({ ...t, pick: (p) => ensembleOf(p, 2) })),
      true,
    );
    const g = meets(pools.map((t) => pct(single(t.pool).acc)));
    goal.push(
      `- disjoint pools of ${size} (seeds in order): auto's pick ${g.a.mean.toFixed(1)} ± ${g.a.std.toFixed(1)}; higher mean than ${g.above}/${fixed.length} fixed methods, lower sd than ${g.tighter}/${fixed.length}: goal ${g.above === fixed.length && g.tighter === fixed.length ? 'met' : 'not met'}`,
    );
    // how much the split decides: every pool of `size` seeds (they overlap), and every split into disjoint pools
    const every = combinations(perSeed.length, size).map(pickAcc);
    const e = meanStd(every);
    const splits = partitions([...perSeed.keys()], size).map((sp) => meets(sp.map(pickAcc)));
    const met = splits.filter((x) => x.above === fixed.length && x.tighter === fixed.length).length;
    goal.push(
      `- every pool of ${size} seeds (${every.length}, overlapping): auto's pick ${e.mean.toFixed(1)} ± ${e.std.toFixed(1)}; of the ${splits.length} ways to split the seeds into disjoint pools of ${size}, ${met} meet the goal`,
    );
  }
  lines.push('', ...ens, '', ...goal);
}

console.log(
  `MNIST → style shift, ${k} source images, ${values.epochs} epoch(s), checkpoints by ${select}, seeds ${seeds.join(',')}; ${os.cpus().length} cores, load ${load.toFixed(1)} at start; ${((performance.now() - t0) / 1000).toFixed(0)} s\n`,
);
console.log(lines.join('\n'));

/** Every k-subset of 0..n−1, in lexicographic order. */
function combinations(n: number, k: number): number[][] {
  if (k === 0) return [[]];
  const out: number[][] = [];
  for (let i = k - 1; i < n; i++) for (const c of combinations(i, k - 1)) out.push([...c, i]);
  return out;
}

/** Every split of `xs` into disjoint groups of `size` (the group holding the first element first). */
function partitions(xs: number[], size: number): number[][][] {
  if (!xs.length) return [[]];
  const [first, ...rest] = xs as [number, ...number[]];
  const out: number[][][] = [];
  for (const c of combinations(rest.length, size - 1)) {
    const group = [first, ...c.map((i) => rest[i]!)];
    const left = rest.filter((_, i) => !c.includes(i));
    for (const p of partitions(left, size)) out.push([group, ...p]);
  }
  return out;
}
