/**
 * bench/default-recipe.ts — does `graft train` with no recipe flags win? (issue 14, "a default that wins").
 *
 * The task: a 5-class Fashion-MNIST image folder (classes T-shirt/top, Trouser, Pullover, Dress, Coat), 80 PNGs
 * per class from the IDX training set (400 train+val images; graft holds out 15 % per class for validation),
 * and a separate fixed test folder of 40 per class from the IDX test set (200 images), on the MobileNetV2 that
 * npm bundles (`nsfwjs:MobileNetV2`, 224×224). Read from Debian's /usr/share/datasets/fashion-mnist (or
 * $GRAFT_FASHION_MNIST_DIR) through src/data/idx.ts.
 *
 * Compared, in one process, each on the same folders and seed:
 *   1. the old default, `--mode fine-tune` (fastai's recipe; minutes on 2 cores: only with --old-default),
 *   2. the README's head recipe (head mode, mlp 256-256, sgd lr 0.01 momentum 0.9, 10 epochs),
 *   3. 12 `graft tune` trials on cached features (TPE, median pruner, head mode; lr, weight decay, epochs),
 *      their best setting then retrained once for its test accuracy,
 *   4. the new default: `graft train` with no recipe flags (train.mode auto, budget 60 s), and once per further
 *      budget in --budget (e.g. --budget 60,300).
 * Prints a table of test accuracy and wall time. Each row starts with an empty feature cache, so every
 * row pays for its own features (--warm keeps the cache between rows).
 *
 * Usage: node --import tsx bench/default-recipe.ts [--out .graft-cache/bench-default-recipe] [--old-default] [--warm] [--budget 60[,300…]]
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { loadFashionMnist } from '../src/data/idx.js';
import { DEFAULT_BUDGET_S, type GraftConfig, parseConfig } from '../src/run/config.js';
import { runTraining } from '../src/run/train.js';
import { parseTuneConfig } from '../src/tune/config.js';
import { trainForExport } from '../src/tune/graft-prepare.js';
import { runTune } from '../src/tune/run.js';
import { configureProgress } from '../src/util/progress.js';
import { writeClassFolders } from './fashion-folder.js';

const { values } = parseArgs({
  options: {
    out: { type: 'string', default: '.graft-cache/bench-default-recipe' },
    'old-default': { type: 'boolean', default: false },
    warm: { type: 'boolean', default: false },
    budget: { type: 'string', default: '60' },
  },
});
const out = path.resolve(values.out!);
const cache = path.join(out, 'cache');
process.env.GRAFT_CACHE_DIR = cache;
configureProgress({ quiet: true });
const log = (o: Record<string, unknown>) => console.log(JSON.stringify(o));

// 1. the folders: 80 train+val and 40 test images per class, 28×28 grey PNGs
const CLASSES: [number, string][] = [
  [0, 'tshirt-top'],
  [1, 'trouser'],
  [2, 'pullover'],
  [3, 'dress'],
  [4, 'coat'],
];
const trainDir = path.join(out, 'data', 'train');
const testDir = path.join(out, 'data', 'test');
if (!fs.existsSync(path.join(out, 'data', 'done'))) {
  const fm = await loadFashionMnist();
  for (const [split, dir, per] of [
    [fm.train, trainDir, 80],
    [fm.test, testDir, 40],
  ] as const)
    await writeClassFolders(split, dir, CLASSES, per);
  fs.writeFileSync(path.join(out, 'data', 'done'), '');
}

const backbone = 'nsfwjs:MobileNetV2';
const base = (name: string, train: Record<string, unknown>) => ({
  data: { train: trainDir, test: testDir },
  model: { backbone, head: { type: 'mlp', hidden: [256, 256], activation: 'relu' } },
  train,
  run: { dir: path.join(out, 'runs'), name, seed: 0, overwrite: true },
});
const cold = () => !values.warm && fs.rmSync(cache, { recursive: true, force: true });

interface Row {
  recipe: string;
  test_acc: number;
  val_acc: number;
  seconds: number;
  note: string;
}
const rows: Row[] = [];

async function train(recipe: string, raw: Record<string, unknown>, note: (s: Awaited<ReturnType<typeof runTraining>>) => string): Promise<void> {
  cold();
  const cfg: GraftConfig = parseConfig(raw, recipe);
  const t0 = performance.now();
  const s = await runTraining(cfg, { source: recipe, onEvent: (e) => e.type === 'note' && e.message.startsWith('auto:') && log({ recipe, note: e.message }) });
  const seconds = (performance.now() - t0) / 1000;
  const row = { recipe, test_acc: s.metrics.test!.acc, val_acc: s.metrics.val!.acc, seconds, note: note(s) };
  log(row);
  rows.push(row);
}

if (values['old-default'])
  await train('old default: graft train --mode fine-tune', base('old-default', { mode: 'fine-tune' }), (s) => `${s.history.length} epochs`);

await train(
  'README head recipe (--mode head, sgd 0.01, 10 epochs)',
  base('readme-head', { mode: 'head', epochs: 10, batchSize: 32, optimizer: { name: 'sgd', lr: 0.01, momentum: 0.9 } }),
  (s) => `${s.history.length} epochs`,
);

{
  cold();
  const recipe = '12 graft tune trials (TPE, head, cached features)';
  const tune = parseTuneConfig(
    {
      study: { name: 'tune12', dir: path.join(out, 'tune'), trials: 12, workers: 0, seed: 0, metric: 'val_acc' },
      sampler: { name: 'tpe' },
      pruner: { name: 'median' },
      space: {
        lr: { type: 'log-uniform', low: 1e-4, high: 1 },
        weightDecay: { type: 'log-uniform', low: 1e-6, high: 1e-2 },
        epochs: { type: 'int', low: 5, high: 60, log: true },
      },
      objective: { config: base('tune', { mode: 'head', optimizer: { name: 'sgd', momentum: 0.9 } }) },
    },
    'bench tune config',
    out,
  );
  fs.rmSync(path.join(out, 'tune'), { recursive: true, force: true });
  const t0 = performance.now();
  const r = await runTune(tune, { progress: false });
  const seconds = (performance.now() - t0) / 1000;
  const best = r.best!;
  const t1 = performance.now();
  const io = { note: () => {}, warn: (m: string) => process.stderr.write(`warning: ${m}\n`) };
  const { metrics } = await trainForExport(tune, path.dirname(r.file), best.params, io);
  const row = {
    recipe,
    test_acc: metrics.test!.acc,
    val_acc: metrics.val.acc,
    seconds,
    note: `best ${JSON.stringify(best.params)}; its retrain for the test set took ${((performance.now() - t1) / 1000).toFixed(1)} s more`,
  };
  log(row);
  rows.push(row);
}

for (const budget of values.budget!.split(',').map(Number)) {
  const raw = base(`auto-${budget}`, budget === DEFAULT_BUDGET_S ? {} : { budget });
  const recipe = budget === DEFAULT_BUDGET_S ? 'new default: graft train (no recipe flags)' : `graft train --budget ${budget}`;
  await train(recipe, raw, (s) => {
    const a = s.auto!;
    return `auto's part ${a.seconds} s of ${a.budget} s (features ${a.features.seconds} s); ${a.search.trials.length} head trials, best #${a.search.best}; fine-tune ${a.fineTune.ran ? (a.fineTune.kept ? 'kept' : 'not kept') : 'skipped'}${
      a.fineTune.reason ? ` (${a.fineTune.reason})` : ''
    }`;
  });
}

const load = os.loadavg().map((l) => l.toFixed(2));
console.log(
  `\n${os.availableParallelism()} cores, load ${load.join(' ')}; features ${values.warm ? 'cached between rows' : 'computed by each row (cold cache)'}\n`,
);
console.log('| recipe | test accuracy | val accuracy | time | note |\n|---|---|---|---|---|');
for (const r of rows)
  console.log(`| ${r.recipe} | ${(r.test_acc * 100).toFixed(1)} % | ${(r.val_acc * 100).toFixed(1)} % | ${r.seconds.toFixed(1)} s | ${r.note} |`);
