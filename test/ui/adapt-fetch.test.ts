/**
 * graft ui in a real browser, the two parts the story does not cover: (1) adaptation methods on one target in
 * the Compare tab, from real tiny `graft adapt --out` runs made here (a `--method auto` run and a `--compare`
 * run on the same target); (2) a registry backbone that is not cached yet, fetched from a loopback server (a
 * GRAFT_REGISTRY entry; nothing from the internet) while the Train tab shows a progress bar with bytes/total.
 * The server holds the second half of the file back until the page has shown the bar part-way.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import type http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import type { Browser } from 'playwright-core';
import { buildProgram } from '../../src/cli/index.js';
import { smallCNN } from '../../src/nn/index.js';
import { encodeModel } from '../../src/onnx/io.js';
import { createUiApp, type UiApp } from '../../src/ui/app.js';
import { launchBrowser } from '../browser.js';
import { writeColourImages } from '../image-fixtures.js';
import { startLoopback, stopLoopback } from '../loopback.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'graft-ui-adapt-'));
const data = path.join(tmp, 'data');
const runs = path.join(tmp, 'runs');
const shots = path.join(tmp, 'screenshots');
const DOCS = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../docs/cli/ui');
const UPDATE_DOCS = process.env.GRAFT_UPDATE_SCREENSHOTS === '1';
const saved = { registry: process.env.GRAFT_REGISTRY, models: process.env.GRAFT_MODELS_DIR };
let browser: Browser;
let ui: UiApp;
let base = '';
let address = '';
let loopback: http.Server;
/** The backbone the loopback server sends, and the switch that lets its second half go. */
const backbone = Buffer.from(encodeModel(smallCNN({ width: 8, inChannels: 3, imageSize: 12, classes: 3 }).build({ inputShape: ['N', 3, 12, 12], seed: 1 })));
let release: () => void = () => {};
const released = new Promise<void>((resolve) => (release = resolve));
let requests = 0;

function toDocs(file: string, name: string): void {
  if (!UPDATE_DOCS) return;
  fs.mkdirSync(DOCS, { recursive: true });
  fs.copyFileSync(file, path.join(DOCS, `${name}.png`));
}

const COLOURS = [
  ['amber', [200, 140, 40]],
  ['coral', [210, 100, 80]],
  ['olive', [140, 150, 50]],
] as const;

before(async () => {
  await writeColourImages(data, { colours: COLOURS.map(([c, rgb]) => [c, [...rgb]]), perClass: 10, size: 12, seed: 3, noise: 160 });
  // the target: the same classes, darker (its class folders are ignored as --target, read as labels by --target-eval)
  const target = path.join(tmp, 'target');
  await writeColourImages(target, { colours: COLOURS.map(([c, rgb]) => [c, rgb.map((v) => v * 0.6)]), perClass: 8, size: 12, seed: 5, noise: 160 });
  const common = [
    '--source',
    data,
    '--target',
    target,
    '--target-eval',
    target,
    '--image-size',
    '12',
    '--width',
    '4',
    '--epochs',
    '2',
    '--batch-size',
    '4',
    '--lr',
    '0.1',
  ];
  const adapt = (args: string[]) => buildProgram().parseAsync(['node', 'graft', '--quiet', 'adapt', ...common, ...args]);
  await adapt(['--method', 'auto', '--candidates', 'source-only,mcc,coral', '--out', path.join(runs, 'auto-darker')]);
  await adapt(['--compare', 'source-only,dann', '--out', path.join(runs, 'compare-darker')]);

  ({ server: loopback, base } = await startLoopback((req, res) => {
    if (req.url !== '/tiny-net.onnx') return void res.writeHead(404).end();
    requests++;
    const half = backbone.length >> 1;
    res.writeHead(200, { 'content-length': backbone.length });
    res.write(backbone.subarray(0, half));
    void released.then(() => res.end(backbone.subarray(half)));
  }));
  const registry = path.join(tmp, 'registry.json');
  const sha256 = createHash('sha256').update(backbone).digest('hex');
  const entry = {
    name: 'tiny-net',
    description: 'a SmallCNN served by the test',
    preprocess: { size: 12, channels: 3, resize: 'stretch' },
    download: { url: `${base}/tiny-net.onnx`, sha256, size: backbone.length },
  };
  fs.writeFileSync(registry, JSON.stringify({ models: [entry] }));
  process.env.GRAFT_REGISTRY = registry;
  process.env.GRAFT_MODELS_DIR = path.join(tmp, 'models');
  fs.writeFileSync(path.join(tmp, 'graft.yaml'), 'train:\n  batchSize: 4\n  earlyStopping: false\ndata:\n  valSplit: 0.3\n');
  fs.mkdirSync(shots, { recursive: true });
  ui = await createUiApp({ folders: [data], runsDir: runs, configFile: path.join(tmp, 'graft.yaml') });
  address = await ui.app.listen({ host: '127.0.0.1', port: 0 });
  browser = await launchBrowser();
});
after(async () => {
  release();
  await browser?.close();
  await ui?.app.close();
  stopLoopback(loopback);
  for (const [k, v] of [
    ['GRAFT_REGISTRY', saved.registry],
    ['GRAFT_MODELS_DIR', saved.models],
  ] as const)
    if (v === undefined) delete process.env[k];
    else process.env[k] = v;
  fs.rmSync(tmp, { recursive: true, force: true });
});

test('Compare shows adaptation methods on one target: scores, target accuracy, the pick and its reason, a bar chart', async () => {
  const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  const errors: string[] = [];
  page.on('pageerror', (e) => errors.push(e.message));
  await page.goto(`${address}/?token=${ui.token}`);
  await page.click('nav button[data-tab="compare"]');
  await page.waitForSelector('#adapt-chart svg');
  // both runs adapted to the same target: one group, every (run, method) a row
  assert.equal(await page.locator('#adapt-target option').count(), 1);
  const read = (run: string) => JSON.parse(fs.readFileSync(path.join(runs, run, 'results.json'), 'utf8'));
  const auto = read('auto-darker');
  const compare = read('compare-darker');
  const rows = await page.$$eval('#adapt-methods tr[data-method]', (trs) =>
    trs.map((tr) => ({ cells: [...tr.children].map((c) => c.textContent), picked: tr.getAttribute('data-picked') })),
  );
  assert.equal(rows.length, auto.auto.candidates.length + compare.runs.length);
  const head = await page.$$eval('#adapt-methods th', (ths) => ths.map((t) => t.textContent));
  assert.deepEqual(head, ['run', 'method', 'seed', 'SND', 'target entropy', 'IM', 'target acc', 'source val acc', '']);
  // each row shows the stored numbers: the auto run's candidate scores (those it picked by), the compare run's selected checkpoints
  const stored = (run: string, method: string): Record<string, number> =>
    run === 'auto-darker'
      ? auto.auto.candidates.find((c: { method: string }) => c.method === method)
      : compare.runs.find((r: { method: string }) => r.method === method).selected;
  assert.deepEqual(rows.map((r) => `${r.cells[0]} ${r.cells[1]}`).sort(), [
    'auto-darker coral',
    'auto-darker mcc',
    'auto-darker source-only',
    'compare-darker dann',
    'compare-darker source-only',
  ]);
  for (const { cells, picked } of rows) {
    const [run, method] = cells as [string, string];
    const s = stored(run, method);
    assert.deepEqual(cells.slice(3, 7), [s.snd!.toFixed(3), s.target_entropy!.toFixed(3), s.target_im!.toFixed(3), `${(100 * s.target_acc!).toFixed(1)}%`]);
    assert.equal(picked, String(run === 'auto-darker' && method === auto.auto.pick.method), `${run} ${method}`);
  }
  assert.equal(rows.filter((r) => r.picked === 'true').length, 1, 'one pick: the auto run’s');
  assert.match(await page.textContent('.adapt-pick[data-run="auto-darker"]').then(String), /picked \S+: the highest IM .* No target label was read\./);
  assert.match(await page.textContent('.adapt-pick[data-run="compare-darker"]').then(String), /No pick: --compare ran source-only, dann/);
  // the chart: a bar per (candidate, measure), the four measures as panels
  const bars = await page.locator('#adapt-chart [aria-roledescription="bar"]').count();
  assert.equal(bars, 4 * rows.length);
  // training runs' comparison leaves the adapt runs out (they have no curves)
  assert.equal(await page.locator('.pick input[value="auto-darker"]').count(), 0);
  const file = path.join(shots, 'adapt.png');
  await page.locator('#adapt-section').screenshot({ path: file });
  toDocs(file, 'adapt');
  assert.deepEqual(errors, []);
  await page.close();
});

test('a registry backbone not in the cache is fetched with a progress bar (bytes of total), then the run trains', async () => {
  const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  const errors: string[] = [];
  page.on('pageerror', (e) => errors.push(e.message));
  await page.goto(`${address}/?token=${ui.token}`);
  await page.click('nav button[data-tab="train"]');
  assert.match(await page.textContent('#backbone option[value="tiny-net"]').then(String), /tiny-net \(fetched on first use\)/);
  await page.selectOption('#backbone', 'tiny-net');
  await page.selectOption('#mode', 'head');
  assert.ok(await page.isHidden('#budget'), 'a set recipe asks for epochs, not a time budget');
  await page.fill('#epochs', '1');
  await page.fill('#run-name', 'fetched');
  await page.evaluate(() => {
    const el = document.getElementById('live-task')!;
    const w = window as unknown as { seen: string[] };
    w.seen = [];
    new MutationObserver(() => w.seen.push(`${el.dataset.task}:${el.dataset.done}/${el.dataset.total}`)).observe(el, {
      attributes: true,
      attributeFilter: ['data-done'],
    });
  });
  await page.click('#start');
  // half the file is there and the rest held back: the bar stands part-way
  const total = Math.ceil(backbone.length / 1024);
  await page.waitForFunction(
    (t) => {
      const el = document.getElementById('live-task')!;
      return !el.hidden && el.dataset.task === 'fetching tiny-net' && Number(el.dataset.done) > 0 && Number(el.dataset.total) === t;
    },
    total,
    { timeout: 30_000 },
  );
  const done = Number(await page.getAttribute('#live-task', 'data-done'));
  assert.ok(done > 0 && done < total, `part-way: ${done} of ${total} KiB`);
  // with its ETA, paced from the task's first report (0 KiB) to this one
  assert.match(String(await page.textContent('#live-task-text')), new RegExp(`^fetching tiny-net: ${done} KiB / ${total} KiB · ETA \\d+ s$`));
  assert.equal(await page.$eval('#live-task-bar', (b) => [(b as HTMLProgressElement).value, (b as HTMLProgressElement).max].join('/')), `${done}/${total}`);
  assert.match(await page.textContent('#live-notes').then(String), /tiny-net is not in the model cache yet: fetching it from http:\/\/127\.0\.0\.1/);
  const file = path.join(shots, 'fetch.png');
  await page.screenshot({ path: file, fullPage: true });
  toDocs(file, 'fetch');
  release();
  await page.waitForSelector('tr[data-run="fetched"][data-state="finished"]', { timeout: 60_000 });
  const seen = await page.evaluate(() => (window as unknown as { seen: string[] }).seen.filter((s) => s.startsWith('fetching ')));
  assert.equal(seen.at(-1), `fetching tiny-net:${total}/${total}`, `the bar reached the whole file: ${seen.join(', ')}`);
  assert.equal(requests, 1);
  assert.deepEqual(fs.readFileSync(path.join(tmp, 'models', 'tiny-net.onnx')), backbone, 'the fetched file is in the cache');
  // Look offers the training run, not the adapt runs beside it (they keep no validation predictions)
  await page.click('nav button[data-tab="look"]');
  await page.waitForSelector('#look-summary');
  assert.deepEqual(await page.$$eval('#look-run option', (os) => os.map((o) => (o as HTMLOptionElement).value)), ['fetched']);
  assert.deepEqual(errors, []);
  await page.close();
});

test('the adaptation API says which runs it cannot compare: another target, or a run that is not an adapt run', async () => {
  // a copy of the auto run, told it adapted to another target
  const other = path.join(runs, 'elsewhere');
  fs.cpSync(path.join(runs, 'auto-darker'), other, { recursive: true });
  for (const f of ['config.json', 'results.json']) {
    const doc = JSON.parse(fs.readFileSync(path.join(other, f), 'utf8'));
    doc.target = 'sketches';
    fs.writeFileSync(path.join(other, f), JSON.stringify(doc));
  }
  const get = async (q: string) => {
    const res = await fetch(`${address}/api/adapt${q}${q ? '&' : '?'}token=${ui.token}`);
    return { status: res.status, body: (await res.json()) as { error?: string } & unknown[] };
  };
  const groups = await get('');
  assert.deepEqual(
    (groups.body as unknown as { target: string; runs: string[] }[]).map((g) => [g.target, [...g.runs].sort()]),
    [
      ['sketches', ['elsewhere']],
      [path.join(tmp, 'target'), ['auto-darker', 'compare-darker']],
    ],
  );
  const mixed = await get('?runs=auto-darker,elsewhere');
  assert.equal(mixed.status, 400);
  assert.match(String(mixed.body.error), /auto-darker adapted to .*target and elsewhere to sketches; methods compare on one target only/);
  const train = await get('?runs=fetched');
  assert.equal(train.status, 400);
  assert.match(String(train.body.error), /fetched holds no graft adapt run; pick one from the adaptation runs/);
  const outside = await get('?runs=..');
  assert.equal(outside.status, 400);
  // and the training-run routes refuse an adapt run with a pointer
  const look = await fetch(`${address}/api/runs/auto-darker/results?token=${ui.token}`);
  assert.equal(look.status, 400);
  assert.match(((await look.json()) as { error: string }).error, /is a graft adapt run: it keeps no validation predictions/);
});
