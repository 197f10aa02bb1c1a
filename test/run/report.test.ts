/**
 * The end of a training run (issue 14): the summary names the epoch early stopping restored, the temperature
 * fitted on val is in the summary and model.json, and report.html holds the curves, confusion matrix, legend,
 * restored epoch and preprocessing recipe.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, test } from 'node:test';
import sharp from 'sharp';
import { formatSummary } from '../../src/cli/commands/train.js';
import { parseConfig } from '../../src/run/config.js';
import { restoredEpochOf } from '../../src/run/report.js';
import { runTraining } from '../../src/run/train.js';
import '../../src/ops/index.js';
import { runGraft } from '../cli-run.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'graft-run-report-'));
after(() => fs.rmSync(tmp, { recursive: true, force: true }));
process.env.GRAFT_THREADS = '1';

async function makeImages(root: string, perClass: number, colours: Record<string, number[]>): Promise<void> {
  let s = 3;
  const rnd = () => (s = (s * 1103515245 + 12345) % 2147483648) / 2147483648;
  for (const [c, rgb] of Object.entries(colours)) {
    fs.mkdirSync(path.join(root, c), { recursive: true });
    for (let i = 0; i < perClass; i++) {
      const px = Buffer.alloc(16 * 16 * 3);
      for (let p = 0; p < px.length; p++) px[p] = Math.max(0, Math.min(255, rgb[p % 3]! + (rnd() - 0.5) * 200));
      await sharp(px, { raw: { width: 16, height: 16, channels: 3 } })
        .png()
        .toFile(path.join(root, c, `${i}.png`));
    }
  }
}

test('restoredEpochOf follows early stopping: the best monitored epoch, later ones better only by more than minDelta', () => {
  const h = [0.5, 0.7, 0.705, 0.6].map((v, i) => ({ epoch: i, step: i, val_acc: v }));
  assert.deepEqual(restoredEpochOf(h, 'val_acc'), { epoch: 3, value: 0.705 });
  assert.deepEqual(restoredEpochOf(h, 'val_acc', 0.01), { epoch: 2, value: 0.7 });
  const l = [1, 0.8, 0.9].map((v, i) => ({ epoch: i, step: i, val_loss: v }));
  assert.equal(restoredEpochOf(l, 'val_loss')?.epoch, 2);
});

test('a train run with early stopping: the summary names the restored epoch, calibration is stored, report.html is written', async () => {
  const data = path.join(tmp, 'colours');
  await makeImages(data, 12, { red: [200, 60, 60], green: [60, 200, 60], blue: [60, 60, 200] });
  const cfg = parseConfig({
    data: { train: data, valSplit: 0.34 },
    model: { arch: 'small-cnn', width: 4, preprocess: { size: 16 }, head: { type: 'linear' } },
    train: { mode: 'head', epochs: 8, batchSize: 8, optimizer: { lr: 0.3 }, earlyStopping: { enabled: true, monitor: 'val_loss', patience: 2 } },
    run: { dir: path.join(tmp, 'runs'), name: 'r', seed: 2 },
  });
  const s = await runTraining(cfg, { source: 'test' });
  const phase = s.phases[0]!;
  const want = restoredEpochOf(
    s.history.map((h) => h as never),
    'val_loss',
  );
  assert.ok(want);
  assert.equal(phase.restoredEpoch, want.epoch);
  assert.match(phase.monitor!, /^val_loss \d\.\d{4}$/);
  assert.match(formatSummary(s).join('\n'), new RegExp(`phase\\s+head: ${phase.epochs} epoch\\(s\\).*restored epoch ${want.epoch} \\(best val_loss`));
  assert.ok(s.calibration && s.calibration.temperature > 0);
  assert.ok(s.calibration.after.nll <= s.calibration.before.nll + 1e-9, 'the fitted temperature never raises val NLL');
  assert.match(formatSummary(s).join('\n'), /calibrated temperature \d+\.\d{3} on val: ECE [\d.]+% -> [\d.]+%/);
  const meta = JSON.parse(fs.readFileSync(path.join(s.run, 'model.json'), 'utf8'));
  assert.equal(meta.temperature, s.calibration.temperature);
  assert.deepEqual(meta.calibration, s.calibration);

  assert.equal(s.report, path.join(s.run, 'report.html'));
  const html = fs.readFileSync(s.report!, 'utf8');
  assert.match(html, /<h2>Training curves<\/h2>\n<div class="charts"><svg/);
  assert.match(html, new RegExp(`head: early stopping restored epoch ${want.epoch} of ${phase.epochs}`));
  assert.ok(html.includes('restored epoch'), 'the restored epoch is marked on the curves');
  assert.ok(html.includes('perfect calibration') && html.includes('gap to confidence'), 'reliability legend');
  assert.match(html, /true \\ predicted/);
  assert.match(html, /<pre class="recipe"><code>[\s\S]*x \/ 255|x = np\.asarray\(img, dtype=np\.float32\) \/ 255/);
  assert.match(html, /Temperature scaling: T = /);
  assert.doesNotMatch(html, /top-\d accuracy/, '3 classes: top-5 is not shown');
  assert.ok(!/<script|https?:\/\/(?!www\.w3\.org)/.test(html), 'self-contained');

  // graft eval of the trained model: its report shows the model's training curves and restored epoch too
  const out = path.join(tmp, 'eval');
  const ev = await runGraft(['eval', s.model, '--data', data, '--out', out], tmp, { GRAFT_THREADS: '1' });
  assert.equal(ev.code, 0, ev.stderr);
  const evalHtml = fs.readFileSync(path.join(out, 'report.html'), 'utf8');
  assert.match(evalHtml, /<h2>Training curves<\/h2>\n<div class="charts"><svg/);
  assert.match(evalHtml, new RegExp(`head: early stopping restored epoch ${want.epoch} of ${phase.epochs}`));
  assert.match(evalHtml, /<pre class="recipe">/);
});
