/**
 * How well `graft adapt --method auto` picks without target labels, on the public shift (MNIST → the demo's
 * style shift; bench/adapt.ts's protocol, optionally shortened): for every seed, every candidate method runs
 * once (autoAdapt), and each validator (SND, entropy, IM) picks one run from the unlabelled target alone. Against
 * the target accuracy (labels used only here, after the fact): how often the pick is within 2 points of the
 * seed's best candidate, the mean regret, and the picked accuracy over seeds next to every fixed method's.
 *
 * Usage: node --import tsx bench/adapt-auto.ts [--candidates source-only,adabn,coral,dan,cdan,mcc,self-training]
 *        [--seeds 0,1,2] [--epochs 2] [--source-samples n] [--out runs/bench-adapt-auto.json]
 *        node --import tsx bench/adapt-auto.ts --from runs/bench-adapt-auto.json   (the tables again, from the seeds done so far)
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { type AutoCandidate, argmaxBy, autoAdapt, meanStd, parseMethod, unlabelledArrays, VALIDATORS } from '../src/adapt/index.js';
import { loadMnist } from '../src/data/idx.js';
import { styleShift } from '../src/data/shift.js';
import { smallCNN } from '../src/nn/index.js';
import { ArraySource } from '../src/step/batches.js';

const { values } = parseArgs({
  options: {
    candidates: { type: 'string', default: 'source-only,adabn,coral,dan,cdan,mcc,self-training' },
    seeds: { type: 'string', default: '0,1,2' },
    epochs: { type: 'string', default: '2' },
    'source-samples': { type: 'string' },
    out: { type: 'string', default: 'runs/bench-adapt-auto.json' },
    from: { type: 'string' },
  },
});
const t0 = performance.now();
const saved = values.from ? JSON.parse(fs.readFileSync(values.from, 'utf8')) : undefined;
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
    onRun: (x) =>
      process.stderr.write(
        `[seed ${seed}] ${x.method}: target ${(100 * x.selected.target_acc!).toFixed(1)} % (${x.seconds.toFixed(0)} s, ${((performance.now() - t0) / 1000).toFixed(0)} s total)\n`,
      ),
  });
  perSeed.push({ seed, candidates: r.auto.candidates });
  fs.mkdirSync(path.dirname(values.out), { recursive: true });
  fs.writeFileSync(values.out, `${JSON.stringify({ candidates, seeds, epochs: values.epochs, sourceSamples: k, perSeed }, null, 2)}\n`);
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
console.log(
  `MNIST → style shift, ${k} source images, ${values.epochs} epoch(s), seeds ${seeds.join(',')}; ${os.cpus().length} cores, load ${load.toFixed(1)} at start; ${((performance.now() - t0) / 1000).toFixed(0)} s\n`,
);
console.log(lines.join('\n'));
