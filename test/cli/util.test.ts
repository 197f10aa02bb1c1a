import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { PassThrough } from 'node:stream';
import { after, test } from 'node:test';
import { type AtomicFs, atomicWrite } from '../../src/util/atomic-write.js';
import { appendJsonl, readJsonl } from '../../src/util/jsonl.js';
import { createProgress } from '../../src/util/progress.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'graft-util-'));
after(() => fs.rmSync(tmp, { recursive: true, force: true }));

const enospc = () => Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC', errno: -28 });

test('atomicWrite creates folders, replaces content and leaves no temp files', () => {
  const file = path.join(tmp, 'a', 'b', 'ckpt.json');
  atomicWrite(file, '{"v":1}');
  atomicWrite(file, new Uint8Array(Buffer.from('{"v":2}')));
  assert.equal(fs.readFileSync(file, 'utf8'), '{"v":2}');
  assert.deepStrictEqual(fs.readdirSync(path.dirname(file)), ['ckpt.json']);
});

test('atomicWrite keeps the old file when the disk fills up mid-write', () => {
  const file = path.join(tmp, 'keep.bin');
  atomicWrite(file, 'old content');
  let calls = 0;
  // the first chunk "succeeds" partially, then the disk is full
  const writeSync: AtomicFs['writeSync'] = (fd, buf, off, len, pos) => {
    if (calls++ === 0) return fs.writeSync(fd, buf, off, Math.min(len, 3), pos);
    throw enospc();
  };
  assert.throws(
    () => atomicWrite(file, 'new content that does not fit', { fs: { writeSync } }),
    (e: Error) => {
      assert.match(
        e.message,
        /^Could not write .*keep\.bin: the disk is full \(ENOSPC\)\. Free some disk space or write to another disk\. Any previous version of the file is unchanged\.$/,
      );
      return true;
    },
  );
  assert.equal(fs.readFileSync(file, 'utf8'), 'old content');
  assert.deepStrictEqual(
    fs.readdirSync(tmp).filter((f) => f.includes('keep')),
    ['keep.bin'],
    'temp file removed',
  );
});

test('atomicWrite keeps the old file when fsync or rename fails', () => {
  const file = path.join(tmp, 'keep2.bin');
  atomicWrite(file, 'old');
  const failures: Partial<AtomicFs>[] = [
    {
      fsyncSync: () => {
        throw Object.assign(new Error('EIO'), { code: 'EIO' });
      },
    },
    {
      renameSync: () => {
        throw Object.assign(new Error('EACCES'), { code: 'EACCES' });
      },
    },
    {
      openSync: () => {
        throw Object.assign(new Error('EROFS'), { code: 'EROFS' });
      },
    },
  ];
  for (const f of failures) {
    assert.throws(() => atomicWrite(file, 'new', { fs: f }), /^Error: Could not write .*keep2\.bin: .*\(E(IO|ACCES|ROFS)\)\. .*unchanged\.$/);
    assert.equal(fs.readFileSync(file, 'utf8'), 'old');
  }
  assert.deepStrictEqual(
    fs.readdirSync(tmp).filter((f) => f.includes('keep2')),
    ['keep2.bin'],
  );
});

test('appendJsonl appends one line per object; readJsonl tolerates a torn last line', () => {
  const file = path.join(tmp, 'logs', 'metrics.jsonl');
  appendJsonl(file, { step: 1, loss: 0.5 });
  appendJsonl(file, { step: 2, loss: Number.NaN, big: 2n ** 70n, small: 3n });
  assert.deepStrictEqual(fs.readFileSync(file, 'utf8').split('\n'), [
    '{"step":1,"loss":0.5}',
    '{"step":2,"loss":"NaN","big":"1180591620717411303424","small":3}',
    '',
  ]);
  fs.appendFileSync(file, '{"step":3,"lo');
  assert.deepStrictEqual(
    readJsonl<{ step: number }>(file).map((r) => r.step),
    [1, 2],
  );
  fs.writeFileSync(file, '{"a":1}\nnot json\n{"a":2}\n');
  assert.throws(() => readJsonl(file), /metrics\.jsonl:2 is not valid JSON/);
});

/** A fake writable that records what was written. */
function sink(isTTY: boolean) {
  const s = new PassThrough() as PassThrough & { isTTY?: boolean; columns?: number };
  s.isTTY = isTTY;
  s.columns = 120;
  let text = '';
  s.on('data', (d) => (text += d.toString()));
  return { stream: s, text: () => text };
}

test('progress off a TTY: throttled JSON lines (at most 2/s) plus a final line', () => {
  const out = sink(false);
  let now = 0;
  const p = createProgress({ total: 100, label: 'epoch 1', unit: 'batch', stream: out.stream, now: () => now });
  for (let i = 0; i < 100; i++) {
    now += 25; // 40 batches per second, 2.5 s in all
    p.tick(1, { loss: 1 / (i + 1) });
  }
  p.done({ acc: 0.9 });
  p.done();
  const lines = out
    .text()
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l));
  assert.ok(lines.length >= 3 && lines.length <= 2.5 * 2 + 2, `${lines.length} lines`);
  const last = lines.at(-1)!;
  assert.deepStrictEqual(
    { event: last.event, label: last.label, done: last.done, total: last.total, unit: last.unit, final: last.final, acc: last.acc },
    { event: 'progress', label: 'epoch 1', done: 100, total: 100, unit: 'batch', final: true, acc: 0.9 },
  );
  assert.equal(last.rate, 40);
  assert.equal(last.eta_s, 0);
  assert.equal(last.loss, 0.01);
  const first = lines[0]!;
  assert.equal(first.done, 1);
  assert.ok(first.eta_s > 0);
  for (let i = 1; i < lines.length - 1; i++) assert.ok(lines[i].elapsed_s - lines[i - 1].elapsed_s >= 0.5 - 1e-9, 'throttled');
});

test('progress on a TTY draws a bar with rate and ETA; silent mode writes nothing', async () => {
  const out = sink(true);
  const p = createProgress({ total: 10, label: 'train', unit: 'img', stream: out.stream });
  for (let i = 0; i < 10; i++) p.tick(1, { loss: 0.25 });
  p.done();
  await new Promise((r) => setImmediate(r));
  const text = out.text();
  assert.match(text, /train \[.*\] 100% 10\/10 img \| [\d.]+ img\/s \| ETA \d+s loss=0\.25/);
  const quiet = sink(true);
  const q = createProgress({ total: 3, stream: quiet.stream, mode: 'silent' });
  q.tick();
  q.done();
  assert.equal(quiet.text(), '');
});
