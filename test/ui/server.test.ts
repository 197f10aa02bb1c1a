/**
 * graft ui's server without a browser: the session token on every route, no path outside the chosen folders
 * (relative, absolute, encoded and through a symbolic link), upload size and pixel limits, and the data look's
 * warnings (corrupt file, duplicates across the split, class imbalance).
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import sharp from 'sharp';
import type { DataSummary } from '../../src/run/data-summary.js';
import type { StudyView } from '../../src/tune/charts.js';
import { createUiApp, type UiApp } from '../../src/ui/app.js';
import { writeColourImages } from '../image-fixtures.js';
import { writeStudy } from './study-fixture.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'graft-ui-server-'));
const data = path.join(tmp, 'data');
const runs = path.join(tmp, 'runs');
const secret = path.join(tmp, 'secret.png');
let ui: UiApp;

before(async () => {
  await writeColourImages(data, {
    colours: [
      ['big', [200, 40, 40]],
      ['small', [40, 40, 200]],
    ],
    perClass: 3,
    size: 8,
    seed: 1,
  });
  await writeColourImages(path.join(tmp, 'more'), { colours: [['big', [200, 40, 40]]], perClass: 12, size: 8, seed: 2 });
  for (let i = 0; i < 12; i++) fs.copyFileSync(path.join(tmp, 'more', 'big', `${i}.png`), path.join(data, 'big', `m${i}.png`));
  // six copies of one image: a 50% split puts some in train and some in val
  for (let i = 0; i < 6; i++) fs.copyFileSync(path.join(data, 'big', '0.png'), path.join(data, 'big', `dup${i}.png`));
  fs.writeFileSync(path.join(data, 'big', 'broken.png'), 'not a png');
  fs.copyFileSync(path.join(data, 'small', '0.png'), secret);
  fs.symlinkSync(secret, path.join(data, 'small', 'link.png'));
  // a finished-looking run: the upload checks come before the model is read
  fs.mkdirSync(path.join(runs, 'done'), { recursive: true });
  fs.writeFileSync(path.join(runs, 'done', 'model.onnx'), '');
  writeStudy(path.join(runs, 'tune', 'heads', 'study.jsonl'));
  ui = await createUiApp({ folders: [data], runsDir: runs, maxUploadBytes: 4096, maxUploadPixels: 64 * 64, token: 'T0K' });
});
after(async () => {
  await ui.app.close();
  fs.rmSync(tmp, { recursive: true, force: true });
});

const get = (url: string, headers: Record<string, string> = {}) => ui.app.inject({ method: 'GET', url, headers });

test('every page, asset and API route needs the session token (query or header)', async () => {
  for (const url of ['/', '/assets/app.css', '/api/info', '/api/runs', `/api/image?path=${encodeURIComponent(path.join(data, 'big', '1.png'))}`]) {
    const none = await get(url);
    assert.equal(none.statusCode, 401, `${url} without a token`);
    assert.match(none.body, /session token.*printed/);
    const sep = url.includes('?') ? '&' : '?';
    assert.equal((await get(`${url}${sep}token=T0K1`)).statusCode, 401, `${url} with a wrong token`);
    assert.equal((await get(`${url}${sep}token=T0K`)).statusCode, 200, `${url} with the token`);
    assert.equal((await get(url, { 'x-graft-token': 'T0K' })).statusCode, 200, `${url} with the token header`);
  }
  const page = await get('/?token=T0K');
  assert.match(page.body, /\/assets\/app\.js\?token=T0K/);
  assert.match(String(page.headers['content-security-policy']), /default-src 'self'/);
  const fresh = await Promise.all([0, 1].map(() => createUiApp({ folders: [data], runsDir: runs })));
  for (const a of fresh) await a.app.close();
  assert.ok(
    fresh.every((a) => a.token.length >= 40),
    'a random token of 32 bytes',
  );
  assert.notEqual(fresh[0]!.token, fresh[1]!.token, 'a new token per start');
});

test('no path outside the chosen folders: relative, absolute, encoded, through a link, or as a run name', async () => {
  const image = (p: string) => get(`/api/image?token=T0K&path=${encodeURIComponent(p)}`);
  assert.equal((await image(path.join(data, 'big', '1.png'))).statusCode, 200);
  assert.equal((await image('big/1.png')).statusCode, 200, 'relative to the data folder');
  for (const p of ['../secret.png', secret, 'big/../../secret.png', '/etc/passwd', 'small/link.png', `${data}/../secret.png`]) {
    const r = await image(p);
    assert.equal(r.statusCode, 403, p);
    assert.match(r.json().error, /outside the folders it serves/);
  }
  assert.equal((await get(`/api/data?token=T0K&folder=${encodeURIComponent(tmp)}`)).statusCode, 403);
  assert.equal((await get('/api/data?token=T0K&folder=..')).statusCode, 403);
  for (const name of ['..', '..%2F..%2Fetc', '%2e%2e']) {
    const r = await get(`/api/runs/${name}/files/onnx?token=T0K`);
    assert.ok([400, 404].includes(r.statusCode), `${name}: ${r.statusCode}`);
    assert.doesNotMatch(r.body, /root:/);
  }
  assert.equal((await get('/api/runs/done/files/passwd?token=T0K')).statusCode, 404);
  const form = await ui.app.inject({ method: 'POST', url: '/api/runs?token=T0K', payload: { data: tmp, backbone: 'small-cnn' } });
  assert.equal(form.statusCode, 403, 'a run cannot train on a folder outside');
  // the form's time budget reaches the config (train.budget) and is checked by it, as --budget is
  const budget = await ui.app.inject({ method: 'POST', url: '/api/runs?token=T0K', payload: { data, backbone: 'small-cnn', mode: 'auto', budget: -5 } });
  assert.equal(budget.statusCode, 400);
  assert.match(budget.json().error, /train\.budget/);
  assert.match(budget.json().error, /time budget/);
});

async function upload(body: Buffer, filename = 'x.png') {
  const b = '----graftui';
  const payload = Buffer.concat([
    Buffer.from(`--${b}\r\nContent-Disposition: form-data; name="image"; filename="${filename}"\r\nContent-Type: image/png\r\n\r\n`),
    body,
    Buffer.from(`\r\n--${b}--\r\n`),
  ]);
  return ui.app.inject({ method: 'POST', url: '/api/runs/done/try?token=T0K', payload, headers: { 'content-type': `multipart/form-data; boundary=${b}` } });
}

test('try-it uploads are limited in bytes and pixels, and must be images', async () => {
  let seed = 7;
  const noise = Buffer.from(Array.from({ length: 80 * 80 * 3 }, () => ((seed = (seed * 1103515245 + 12345) % 2147483648) >> 16) & 255));
  const noisy = await sharp(noise, { raw: { width: 80, height: 80, channels: 3 } })
    .png()
    .toBuffer();
  assert.ok(noisy.length > 4096);
  const big = await upload(noisy);
  assert.equal(big.statusCode, 413);
  assert.match(big.json().error, /limit is 4096 bytes/);
  const wide = await sharp({ create: { width: 200, height: 30, channels: 3, background: '#808080' } })
    .png()
    .toBuffer();
  assert.ok(wide.length <= 4096);
  const many = await upload(wide);
  assert.equal(many.statusCode, 413);
  assert.match(many.json().error, /200×30 pixels, over the limit of 4096/);
  const text = await upload(Buffer.from('hello'), 'x.txt');
  assert.equal(text.statusCode, 422);
});

test('the data look lists classes and counts and gives the corrupt file, duplicates across the split and imbalance', async () => {
  const r = await get('/api/data?token=T0K&valSplit=0.5');
  assert.equal(r.statusCode, 200);
  const s = r.json() as DataSummary;
  assert.deepEqual(
    s.classes.map((c) => [c.name, c.count]),
    [
      ['big', 22],
      ['small', 4],
    ],
  );
  assert.equal(s.split.train + s.split.val, 26);
  const w = s.warnings.join('\n');
  assert.match(w, /broken\.png/);
  assert.match(w, /same content|duplicate/i);
  assert.match(w, /class imbalance: big has 22 images, small only 4/);
});

test('tune studies under the runs folder: the list, trials with pruned and failed ones, the best, the charts', async () => {
  assert.deepEqual((await get('/api/studies?token=T0K')).json(), [path.join('tune', 'heads', 'study.jsonl')]);
  const r = await get(`/api/studies?token=T0K&file=${encodeURIComponent('tune/heads/study.jsonl')}`);
  assert.equal(r.statusCode, 200);
  const v = r.json() as StudyView;
  assert.deepEqual(v.summary.counts, { complete: 4, pruned: 1, failed: 1, running: 0 });
  assert.equal(v.summary.best?.trial, 4);
  const best = (v.charts.bestSoFar as { layer: { data: { values: { trial: number; best: number }[] } }[] }).layer[1]!.data.values;
  assert.deepEqual(
    best.map((b) => b.best),
    [0.61, 0.72, 0.72, 0.72, 0.81],
    'best so far over trials 0-4 (trial 5 failed without a value)',
  );
  assert.ok(v.charts.parallel, 'lr varies: a parallel-coordinates chart');
  assert.equal((await get('/api/studies?token=T0K&file=../secret.png')).statusCode, 403);
  assert.equal((await get('/api/studies?token=T0K&file=done/model.onnx')).statusCode, 400);
});

test('images dragged into a class are written into <folder>/<class>/, never over a file, never outside', async () => {
  const png = await sharp({ create: { width: 8, height: 8, channels: 3, background: '#2040c0' } })
    .png()
    .toBuffer();
  const send = (cls: string, files: [string, Buffer][]) => {
    const b = '----graftadd';
    const parts = files.map(([name, body]) =>
      Buffer.concat([
        Buffer.from(`--${b}\r\nContent-Disposition: form-data; name="images"; filename="${name}"\r\nContent-Type: image/png\r\n\r\n`),
        body,
        Buffer.from('\r\n'),
      ]),
    );
    return ui.app.inject({
      method: 'POST',
      url: `/api/data/images?token=T0K&class=${encodeURIComponent(cls)}`,
      payload: Buffer.concat([...parts, Buffer.from(`--${b}--\r\n`)]),
      headers: { 'content-type': `multipart/form-data; boundary=${b}` },
    });
  };
  const r = await send('blue sky', [
    ['a.png', png],
    ['b.png', png],
  ]);
  assert.equal(r.statusCode, 201, r.body);
  assert.deepEqual(fs.readdirSync(path.join(data, 'blue sky')).sort(), ['a.png', 'b.png']);
  assert.equal((await send('blue sky', [['a.png', png]])).statusCode, 201);
  assert.deepEqual(fs.readdirSync(path.join(data, 'blue sky')).sort(), ['a-1.png', 'a.png', 'b.png'], 'a second a.png does not replace the first');
  for (const cls of ['../escape', '.hidden', 'a/b', '']) assert.equal((await send(cls, [['x.png', png]])).statusCode, 400, cls);
  assert.ok(!fs.existsSync(path.join(tmp, 'escape')));
  const bad = await send('blue sky', [
    ['c.png', png],
    ['d.png', Buffer.from('not an image')],
  ]);
  assert.equal(bad.statusCode, 422);
  assert.match(bad.json().error, /d\.png is not an image.*The 1 image\(s\) before it were added to blue sky/);
  assert.equal((await send('blue sky', [['../../evil.png', png]])).statusCode, 201, 'a path in the file name is reduced to its base name');
  assert.ok(fs.existsSync(path.join(data, 'blue sky', 'evil.png')));
});
