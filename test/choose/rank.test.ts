/**
 * rank() and `graft rank` end to end on a small colour-image folder whose three classes have the same
 * luminance: a backbone whose features are the mean colour (global average pool) separates them perfectly,
 * a random-init grayscale LeNet-5 (arch:lenet5) sees only noise. Every score must rank the first above the
 * second; a missing model file is reported in its row without stopping the others.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { rank } from '../../src/choose/rank.js';
import { formatRanking, writeRanking } from '../../src/choose/report.js';
import { SCORE_NAMES } from '../../src/choose/scores.js';
import { parsePreprocessConfig } from '../../src/data/preprocess.js';
import { flatten, globalAvgPool, linear, sequential } from '../../src/nn/index.js';
import { Network } from '../../src/train/network.js';
import { runGraft } from '../cli-run.js';
import { writeColourImages } from '../image-fixtures.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'graft-rank-'));
after(() => fs.rmSync(tmp, { recursive: true, force: true }));
const data = path.join(tmp, 'data');
const meanColour = path.join(tmp, 'mean-colour', 'model.onnx');
const cacheDir = path.join(tmp, 'cache');

before(async () => {
  // luminance 0.299 r + 0.587 g + 0.114 b ≈ 102 for all three: a grayscale model cannot tell them apart
  await writeColourImages(data, {
    colours: [
      ['red', [200, 60, 60]],
      ['green', [60, 131, 60]],
      ['blue', [90, 80, 245]],
    ],
    perClass: 8,
    size: 16,
    seed: 5,
    noise: 60,
  });
  const m = sequential(globalAvgPool(), flatten(), linear(3, 3)).build({ inputShape: ['N', 3, 16, 16], seed: 0 });
  new Network(m, { preprocess: parsePreprocessConfig({ size: 16, resize: 'stretch' }) }).save(meanColour);
});

describe('rank', () => {
  it('ranks the informative backbone first by every score and reports a broken one in its row', async () => {
    const warnings: string[] = [];
    const opts = { backbones: ['arch:lenet5', meanColour, path.join(tmp, 'missing.onnx')], data, cacheDir, onWarning: (m: string) => warnings.push(m) };
    const r = await rank(opts);
    assert.equal(r.n, 24);
    assert.deepEqual(r.classes, ['blue', 'green', 'red']);
    assert.deepEqual(
      r.backbones.map((b) => b.backbone),
      opts.backbones,
    );
    const [lenet, mean, missing] = r.backbones;
    assert.equal(mean!.dims, 3);
    assert.equal(lenet!.dims, 84);
    assert.match(missing!.error ?? '', /missing\.onnx/);
    assert.ok(warnings.some((w) => w.includes('missing.onnx')));
    // 24 images for LeNet's 84 feature dimensions: LogME/SFDA are flagged as unreliable there, not for the 3-d features
    assert.ok(warnings.some((w) => w.includes('arch:lenet5') && w.includes('24 images for 84 feature dimensions')));
    assert.ok(!warnings.some((w) => w.includes('for 3 feature dimensions')));
    for (const s of SCORE_NAMES) {
      assert.deepEqual(r.ranking[s], [meanColour, 'arch:lenet5'], `${s}: ${mean!.scores![s]} vs ${lenet!.scores![s]}`);
    }
    assert.equal(mean!.scores!.knn, 1);
    assert.ok(lenet!.scores!.knn < 0.7, `random grayscale features: kNN ${lenet!.scores!.knn}`);
    // the features went through the on-disk store, and a second ranking reads them back to the same scores
    assert.equal(fs.readdirSync(path.join(cacheDir, 'features')).filter((f) => !f.startsWith('.')).length, 2);
    const again = await rank({ ...opts, backbones: [meanColour] });
    assert.deepEqual(again.backbones[0]!.scores, mean!.scores);
    // the table and the files
    const table = formatRanking(r).join('\n');
    assert.match(table, /mean-colour/);
    assert.match(table, /error/);
    const files = await writeRanking(r, path.join(tmp, 'out'));
    const json = JSON.parse(fs.readFileSync(files.json!, 'utf8'));
    assert.deepEqual(json.ranking.logme, r.ranking.logme);
    assert.match(fs.readFileSync(files.svg!, 'utf8'), /^<svg/);
  });

  it('keeps the other scores when a class is too small for the probe to hold one image out', async () => {
    const small = path.join(tmp, 'small');
    await writeColourImages(small, { colours: [['red', [200, 60, 60]]], perClass: 4, size: 16, seed: 1, noise: 60 });
    await writeColourImages(small, { colours: [['green', [60, 131, 60]]], perClass: 1, size: 16, seed: 2, noise: 60 });
    const warnings: string[] = [];
    const r = await rank({ backbones: [meanColour], data: small, cacheDir, onWarning: (m) => warnings.push(m) });
    const s = r.backbones[0]!.scores!;
    assert.ok(Number.isNaN(s.probe));
    assert.ok(Number.isFinite(s.logme) && Number.isFinite(s.sfda) && Number.isFinite(s.knn));
    assert.deepEqual(r.ranking.probe, []);
    assert.ok(
      warnings.some((w) => /linear-probe/.test(w) && /green/.test(w)),
      warnings.join('\n'),
    );
    assert.match(formatRanking(r).join('\n'), /n\/a/);
  });

  it('refuses an empty backbone list and data that does not exist', async () => {
    await assert.rejects(rank({ backbones: [], data }), /no backbones/);
    await assert.rejects(rank({ backbones: [meanColour], data: path.join(tmp, 'nope') }), /nope does not exist/);
  });
});

describe('graft rank', () => {
  it('prints the ranking table and writes rank.json and rank.svg', async () => {
    const out = path.join(tmp, 'cli-out');
    const r = await runGraft(['rank', '--backbones', meanColour, 'arch:small-cnn', '--data', data, '-o', out, '-q'], tmp, { GRAFT_CACHE_DIR: cacheDir });
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /24 images of .*data \(3 classes/);
    assert.match(r.stdout, /backbone\s+dims\s+logme\s+sfda\s+knn\s+probe/);
    assert.match(r.stdout, /arch:small-cnn/);
    assert.ok(fs.existsSync(path.join(out, 'rank.json')) && fs.existsSync(path.join(out, 'rank.svg')));
  });
});
