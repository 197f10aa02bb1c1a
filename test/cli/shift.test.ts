/** `graft shift` in-process: two tiny image folders, --out JSON, the same folder twice, and bad input. */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import sharp from 'sharp';
import { buildProgram } from '../../src/cli/index.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'graft-shift-'));
after(() => fs.rmSync(tmp, { recursive: true, force: true }));

async function graft(args: string[]): Promise<void> {
  await buildProgram().parseAsync(['node', 'graft', '--quiet', 'shift', ...args]);
}

/** `n` 8×8 grey noise images around brightness `base`, in nested folders (a folder domain is read recursively). */
async function folder(root: string, n: number, base: number): Promise<void> {
  for (let i = 0; i < n; i++) {
    const dir = path.join(root, `part${i % 2}`);
    fs.mkdirSync(dir, { recursive: true });
    const px = Buffer.alloc(64);
    for (let k = 0; k < 64; k++) px[k] = Math.max(0, Math.min(255, base + ((i * 31 + k * 17) % 41) - 20));
    await sharp(px, { raw: { width: 8, height: 8, channels: 1 } })
      .png()
      .toFile(path.join(dir, `${i}.png`));
  }
}

before(async () => {
  await folder(path.join(tmp, 'dark'), 40, 70);
  await folder(path.join(tmp, 'light'), 40, 180);
});

test('graft shift on two image folders writes the report; the same folder twice compares disjoint halves', async () => {
  const out = path.join(tmp, 'shift.json');
  const args = ['--image-size', '8', '--channels', '1', '--samples', '40', '--permutations', '50'];
  await graft(['--source', path.join(tmp, 'dark'), '--target', path.join(tmp, 'light'), ...args, '--out', out]);
  const r = JSON.parse(fs.readFileSync(out, 'utf8'));
  assert.equal(r.samples.source, 40);
  assert.equal(r.features.dims, 64);
  assert.equal(r.aDistance.aDistance, 2);
  assert.equal(r.mmd.pValue, 1 / 51);
  assert.equal(r.level, 'large');
  assert.match(r.advice.join(' '), /A large shift/);
  const same = path.join(tmp, 'same.json');
  await graft(['--source', path.join(tmp, 'dark'), '--target', path.join(tmp, 'dark'), ...args, '--out', same]);
  const s = JSON.parse(fs.readFileSync(same, 'utf8'));
  assert.equal(s.samples.source, 20, 'two disjoint halves of 40 images');
  assert.equal(s.samples.target, 20);
  assert.ok(s.mmd.pValue > 0.05, `p ${s.mmd.pValue}`);
});

test('graft shift: bad input is one clear error', async () => {
  await assert.rejects(graft(['--source', path.join(tmp, 'nope'), '--target', 'mnist']), /--source: .*nope does not exist.*image folder, a manifest/);
  await assert.rejects(graft(['--source', 'mnist', '--target', 'mnist', '--samples', '3']), /--samples must be at least 8/);
  await assert.rejects(graft(['--source', 'mnist', '--target', 'mnist', '--channels', '2']), /--channels must be 1 or 3/);
  await assert.rejects(
    graft(['--source', path.join(tmp, 'dark'), '--target', 'mnist', '--image-size', '8', '--channels', '1']),
    /--target mnist gives 1x28x28 grayscale images.*1x8x8/,
  );
});
