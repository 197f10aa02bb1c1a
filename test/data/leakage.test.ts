/** Train/val/test leakage warnings: the same file in two splits, the same content under another name, repeated manifest rows. */
import assert from 'node:assert/strict';
import { copyFile, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import sharp from 'sharp';
import { ManifestDataset } from '../../src/data/dataset.js';
import { findSplitLeaks, leakWarning } from '../../src/data/leakage.js';
import { parseConfig } from '../../src/run/config.js';
import { loadRunData } from '../../src/run/setup.js';

const tmp = await mkdtemp(join(tmpdir(), 'graft-leak-'));
after(() => rm(tmp, { recursive: true, force: true }));

const png = (file: string, v: number) =>
  sharp({ create: { width: 4, height: 4, channels: 3, background: { r: v, g: v, b: v } } })
    .png()
    .toFile(file);

// train/{cat,dog}: 3 images each, all different
before(async () => {
  for (const [c, base] of [
    ['cat', 10],
    ['dog', 100],
  ] as const) {
    await mkdir(join(tmp, 'train', c), { recursive: true });
    for (let i = 0; i < 3; i++) await png(join(tmp, 'train', c, `${i}.png`), base + i);
  }
});

test('the same file in two splits is counted and named', async () => {
  const train = [join(tmp, 'train/cat/0.png'), join(tmp, 'train/cat/1.png'), join(tmp, 'train/dog/0.png')];
  const val = [join(tmp, 'train/cat/1.png'), join(tmp, 'train/dog/1.png'), join(tmp, 'train/dog/0.png')];
  const leaks = await findSplitLeaks([
    { name: 'train', paths: train },
    { name: 'val', paths: val },
  ]);
  assert.deepEqual(
    leaks.map(({ a, b, samePath, sameContent }) => ({ a, b, samePath, sameContent })),
    [{ a: 'train', b: 'val', samePath: 2, sameContent: 0 }],
  );
  const w = leakWarning(leaks[0]!);
  assert.match(w, /^val overlaps train: 2 file\(s\) are in both \(e\.g\. .*train\/cat\/1\.png/);
  assert.match(w, /remove the duplicates/);
  // disjoint splits: nothing
  assert.deepEqual(
    await findSplitLeaks([
      { name: 'train', paths: train.slice(0, 1) },
      { name: 'val', paths: val.slice(1, 2) },
    ]),
    [],
  );
});

test('a file with the same content under another name in a later split is counted, through loadRunData', async () => {
  await mkdir(join(tmp, 'val', 'cat'), { recursive: true });
  await mkdir(join(tmp, 'val', 'dog'), { recursive: true });
  await copyFile(join(tmp, 'train/cat/2.png'), join(tmp, 'val/cat/copy.png')); // same bytes, another name
  await png(join(tmp, 'val/cat/new.png'), 50);
  await png(join(tmp, 'val/dog/new.png'), 200);
  // the test manifest lists a training file itself
  await writeFile(join(tmp, 'test.csv'), 'path,label\ntrain/dog/2.png,dog\nval/cat/new.png,cat\n');
  const cfg = parseConfig({
    data: { train: join(tmp, 'train'), val: join(tmp, 'val'), test: join(tmp, 'test.csv') },
    model: { arch: 'small-cnn' },
  });
  const warnings: string[] = [];
  const data = await loadRunData(cfg, { warn: (m) => warnings.push(m) });
  assert.equal(data.val?.kind === 'files' && data.val.paths.length, 3);
  assert.equal(warnings.length, 3, warnings.join('\n'));
  assert.match(
    warnings[0]!,
    /^val overlaps train: 1 file\(s\) have the same content as a train file \(e\.g\. .*val\/cat\/copy\.png \(= .*train\/cat\/2\.png\)\)/,
  );
  assert.match(warnings[1]!, /^test overlaps train: 1 file\(s\) are in both \(e\.g\. .*train\/dog\/2\.png\)/);
  assert.match(warnings[2]!, /^test overlaps val: 1 file\(s\) are in both \(e\.g\. .*val\/cat\/new\.png\)/);
});

test('a manifest that repeats rows warns with the count and the lines', async () => {
  const f = join(tmp, 'repeats.csv');
  await writeFile(f, 'path,label\ntrain/cat/0.png,cat\ntrain/dog/0.png,dog\ntrain/cat/0.png,cat\n./train/dog/0.png,cat\ntrain/dog/1.png,dog\n');
  const warnings: string[] = [];
  const ds = await ManifestDataset.load(f, { onWarning: (m) => warnings.push(m) });
  assert.equal(ds.length, 5, 'rows are kept; the warning says what to fix');
  assert.equal(warnings.length, 1, warnings.join('\n'));
  assert.match(warnings[0]!, /lists the same file again on 2 row\(s\) \(1 with a different label\)/);
  assert.match(warnings[0]!, /line 4 repeats line 2: train\/cat\/0\.png; line 5 repeats line 3: \.\/train\/dog\/0\.png/);
  // no repeats: no warning
  const ok: string[] = [];
  await ManifestDataset.load(join(tmp, 'test.csv'), { onWarning: (m) => ok.push(m) });
  assert.deepEqual(ok, []);
});
