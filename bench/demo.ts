/**
 * npm run bench:demo — the demo's protocols over several seeds and k, for docs/benchmarks.md: the style shift (k = 10)
 * and the new-classes scenario (k = 10, 3, 1), each seed pretraining once and reusing the source model for every k.
 * Prints one JSON line per run and a summary (mean ± std per setting) at the end.
 * Usage: npm run bench:demo [-- --scenario style-shift|new-classes --seeds 0,1,2 --k 10,3,1 --adapt-steps 300]
 *        npm run bench:demo -- --scratch-only --seeds 0-9   (style shift, the scratch baseline alone: its spread over seeds)
 */
import { parseArgs } from 'node:util';
import { loadMnist } from '../src/data/idx.js';
import { newClassesScenario, type ScenarioResult, scratchSetting, styleShiftFewShot, styleShiftScenario } from '../src/demo/scenarios.js';
import type { Model } from '../src/ir/model.js';

const { values } = parseArgs({
  options: {
    scenario: { type: 'string', default: 'new-classes' },
    seeds: { type: 'string', default: '0,1,2' },
    k: { type: 'string', default: '10,3,1' },
    'adapt-steps': { type: 'string', default: '300' },
    'scratch-only': { type: 'boolean', default: false },
  },
});
const seeds = values.seeds!.includes('-')
  ? (([a, b]) => Array.from({ length: b! - a! + 1 }, (_, i) => a! + i))(values.seeds!.split('-').map(Number))
  : values.seeds!.split(',').map(Number);
const ks = values.k!.split(',').map(Number);
const run = values.scenario === 'style-shift' ? styleShiftScenario : newClassesScenario;
const mnist = await loadMnist();
if (values['scratch-only']) {
  const accs: number[] = [];
  for (const seed of seeds) {
    const { few, test } = styleShiftFewShot(mnist, Number(ks[0]), seed);
    accs.push(await scratchSetting(few, test, 10, { seed, k: ks[0]! }));
    console.log(JSON.stringify({ bench: 'demo-scratch', seed, k: ks[0], scratch: accs.at(-1) }));
  }
  const mean = accs.reduce((a, b) => a + b, 0) / accs.length;
  const std = Math.sqrt(accs.reduce((a, b) => a + (b - mean) ** 2, 0) / Math.max(1, accs.length - 1));
  console.log(JSON.stringify({ summary: 'style-shift scratch', seeds, k: ks[0], mean: +mean.toFixed(2), std: +std.toFixed(2) }));
  process.exit(0);
}
const all: ScenarioResult[] = [];
for (const seed of seeds) {
  let pretrained: Model | undefined;
  for (const k of ks) {
    const r = await run({ seed, k, pretrained, adaptSteps: Number(values['adapt-steps']) }, mnist);
    pretrained ??= r.models.pretrained;
    all.push(r);
    const { models: _m, ...rest } = r;
    console.log(JSON.stringify({ bench: 'demo', ...rest }));
  }
}
for (const k of ks) {
  const rs = all.filter((r) => r.k === k);
  const row: Record<string, string> = {};
  for (const key of Object.keys(rs[0]!.acc)) {
    const v = rs.map((r) => r.acc[key]!);
    const mean = v.reduce((a, b) => a + b, 0) / v.length;
    const std = v.length > 1 ? Math.sqrt(v.reduce((a, b) => a + (b - mean) ** 2, 0) / (v.length - 1)) : 0;
    row[key] = `${mean.toFixed(1)} ± ${std.toFixed(1)}`;
  }
  console.log(JSON.stringify({ summary: values.scenario, k, seeds, ...row }));
}
