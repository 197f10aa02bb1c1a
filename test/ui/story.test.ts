/**
 * graft ui in a real browser (playwright-core + Chromium): the whole story on a tiny dataset — open the printed
 * URL, load the folder, start a run, watch its curve update, open a confusion cell's images, try an image, export
 * the model; then an interrupted run (cancelled, the server restarted) resumed from the page, and two runs
 * compared, with a tune study's trials; images added to a new class. A page without the token is refused. Screenshots of each screen go to the test's output folder, and
 * to docs/cli/ui/ with GRAFT_UPDATE_SCREENSHOTS=1.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import AdmZip from 'adm-zip';
import type { Browser, Page } from 'playwright-core';
import type { RunResults } from '../../src/run/results.js';
import { createUiApp, type UiApp } from '../../src/ui/app.js';
import { launchBrowser } from '../browser.js';
import { writeColourImages } from '../image-fixtures.js';
import { writeStudy } from './study-fixture.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'graft-ui-story-'));
const data = path.join(tmp, 'data');
const runs = path.join(tmp, 'runs');
const shots = path.join(tmp, 'screenshots');
const DOCS = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../docs/cli/ui');
/** Screenshots are copied into docs/cli/ui/ only when asked (GRAFT_UPDATE_SCREENSHOTS=1), so `npm test` leaves the checkout clean. */
const UPDATE_DOCS = process.env.GRAFT_UPDATE_SCREENSHOTS === '1';
function toDocs(file: string, name: string): void {
  if (!UPDATE_DOCS) return;
  fs.mkdirSync(DOCS, { recursive: true });
  fs.copyFileSync(file, path.join(DOCS, `${name}.png`));
}
let browser: Browser;
const servers: UiApp[] = [];

before(async () => {
  // three close colours with heavy noise: a tiny model makes mistakes, so the confusion matrix has cells to open
  await writeColourImages(data, {
    colours: [
      ['amber', [200, 140, 40]],
      ['coral', [210, 100, 80]],
      ['olive', [140, 150, 50]],
    ],
    perClass: 14,
    size: 12,
    seed: 11,
    noise: 240,
  });
  // the config under every run: a tiny built-in model so that a run takes seconds
  fs.writeFileSync(path.join(tmp, 'graft.yaml'), 'model:\n  width: 4\ntrain:\n  batchSize: 4\n  earlyStopping: false\ndata:\n  valSplit: 0.3\n');
  fs.mkdirSync(shots, { recursive: true });
  writeStudy(path.join(runs, 'tune', 'heads', 'study.jsonl'));
  browser = await launchBrowser();
});
after(async () => {
  await browser?.close();
  for (const s of servers) await s.app.close();
  fs.rmSync(tmp, { recursive: true, force: true });
});

async function serve(): Promise<{ ui: UiApp; base: string }> {
  const ui = await createUiApp({ folders: [data], runsDir: runs, configFile: path.join(tmp, 'graft.yaml') });
  servers.push(ui);
  const address = await ui.app.listen({ host: '127.0.0.1', port: 0 });
  return { ui, base: address };
}

async function shot(page: Page, name: string): Promise<void> {
  const file = path.join(shots, `${name}.png`);
  await page.screenshot({ path: file, fullPage: true });
  toDocs(file, name);
}

/** Records every value the live chart's epoch count takes (the page redraws the chart on each epoch event). */
async function watchCurves(page: Page): Promise<void> {
  await page.evaluate(() => {
    const el = document.getElementById('live-curves')!;
    const w = window as unknown as { drawn: string[] };
    w.drawn = [el.dataset.epochs ?? ''];
    new MutationObserver(() => w.drawn.push(el.dataset.epochs ?? '')).observe(el, { attributes: true, attributeFilter: ['data-epochs'] });
  });
}

const drawnEpochs = (page: Page) => page.evaluate(() => (window as unknown as { drawn: string[] }).drawn);

async function startRun(page: Page, name: string, epochs: number): Promise<void> {
  await page.click('nav button[data-tab="train"]');
  await page.selectOption('#backbone', 'small-cnn');
  await page.selectOption('#mode', 'full');
  await page.fill('#epochs', String(epochs));
  await page.fill('#image-size', '12');
  await page.fill('#run-name', name);
  await watchCurves(page);
  await page.click('#start');
}

test('the story: open, load a folder, train with live curves, open a confusion cell, try an image, export; resume an interrupted run; compare', async () => {
  const { ui, base } = await serve();
  const page = await browser.newPage({ viewport: { width: 1280, height: 900 }, acceptDownloads: true });
  const errors: string[] = [];
  page.on('pageerror', (e) => errors.push(e.message));

  // without the token there is no page
  const refused = await page.goto(base);
  assert.equal(refused?.status(), 401);
  assert.match(await page.textContent('body').then(String), /session token/);

  // Data: the folder's classes, counts and thumbnails
  await page.goto(`${base}/?token=${ui.token}`);
  await page.waitForSelector('.class-card');
  const cards = await page.$$eval('.class-card[data-class]', (els) => els.map((e) => [e.getAttribute('data-class'), e.querySelector('.count')?.textContent]));
  assert.match(
    await page.textContent('.summary').then(String),
    /42 images \(30 train \/ 12 validation\)/,
    "the split of graft.yaml's valSplit 0.3, as the run makes it",
  );
  assert.deepEqual(cards, [
    ['amber', '14'],
    ['coral', '14'],
    ['olive', '14'],
  ]);
  await page.waitForFunction(() => [...document.querySelectorAll<HTMLImageElement>('.thumbs img')].every((i) => i.complete && i.naturalWidth > 0));
  await shot(page, 'data');

  // Train: the curve is redrawn as epochs arrive, then the run finishes
  await startRun(page, 'story', 3);
  await page.waitForSelector('tr[data-run="story"][data-state="finished"]', { timeout: 60_000 });
  await page.waitForSelector('#live-curves[data-epochs="3"] svg');
  assert.deepEqual(await drawnEpochs(page), ['', '0', '1', '2', '3'], 'the curve was redrawn at each epoch');
  assert.match(await page.textContent('#live-progress').then(String), /story: finished/);
  // the status line that said "story queued" follows the run to its end
  await page.waitForFunction(() => document.getElementById('status')?.textContent === 'story finished');
  // the screenshot shows the form as it opens: the default recipe, auto, with its time budget
  await page.selectOption('#mode', 'auto');
  assert.ok(await page.isVisible('#budget'));
  assert.ok(await page.isHidden('#epochs'), 'auto picks its own epochs: only the budget is asked for');
  await shot(page, 'train');

  // Look: click an off-diagonal confusion cell, its misclassified images open
  await page.click('tr[data-run="story"] button.look');
  await page.waitForSelector('#confusion svg');
  const results = (await (await fetch(`${base}/api/runs/story/results?token=${ui.token}`)).json()) as RunResults;
  const pair = results.confusedPairs[0];
  assert.ok(pair, 'the tiny model makes at least one mistake on the noisy colours');
  // a real click in the cell's corner (its count sits in the middle)
  await page
    .locator(`#confusion [aria-roledescription="rect mark"][aria-label*="predicted: ${pair.pred}; true: ${pair.label};"]`)
    .click({ position: { x: 4, y: 4 } });
  await page.waitForSelector('#cell-images figure');
  assert.equal(await page.locator('#cell-images figure').count(), Math.min(pair.count, 48));
  assert.equal(await page.getAttribute('#cell-images', 'data-cell'), `${pair.label}→${pair.pred}`);
  assert.equal(await page.locator('#per-class tr').count(), 1 + 3);
  assert.ok(await page.locator('#reliability svg').count());
  await shot(page, 'look');

  // Try it: an uploaded image gets its top-k
  await page.setInputFiles('#try-file', path.join(data, 'coral', '0.png'));
  await page.waitForSelector('#try-result ol li');
  assert.equal(await page.locator('#try-result ol li').count(), 3);
  assert.match(await page.textContent('#try-result .top').then(String), /^(amber|coral|olive) \(\d+\.\d%\)$/);
  await page.locator('#try').screenshot({ path: path.join(shots, 'try.png') });
  toDocs(path.join(shots, 'try.png'), 'try');

  // Export: the downloaded model is the run's model.onnx
  const [download] = await Promise.all([page.waitForEvent('download'), page.click('#exports a[data-kind="onnx"]')]);
  const saved = path.join(tmp, 'downloaded.onnx');
  await download.saveAs(saved);
  assert.deepEqual(fs.readFileSync(saved), fs.readFileSync(path.join(runs, 'story', 'model.onnx')));
  // the web bundle (graft export --web) as a zip: the page, the model, its preprocessing and onnxruntime-web
  const [web] = await Promise.all([page.waitForEvent('download'), page.click('#exports a[data-kind="web"]')]);
  const zipFile = path.join(tmp, 'web.zip');
  await web.saveAs(zipFile);
  const entries = new AdmZip(zipFile).getEntries().map((e) => e.entryName);
  for (const f of ['index.html', 'model.onnx', 'model.json']) assert.ok(entries.includes(f), `${f} in ${entries.join(', ')}`);
  assert.ok(
    entries.some((e) => e.startsWith('ort/') && e.endsWith('.wasm')),
    'onnxruntime-web wasm in the bundle',
  );
  const bundled = JSON.parse(new AdmZip(zipFile).readAsText('model.json')) as { labels: string[] };
  assert.deepEqual(bundled.labels, JSON.parse(fs.readFileSync(path.join(runs, 'story', 'model.json'), 'utf8')).labels);

  // an interrupted run: cancelled after its first epoch, then the server restarts; the new page resumes it
  await startRun(page, 'cut', 12);
  await page.waitForFunction(() => (window as unknown as { drawn: string[] }).drawn.includes('1'), undefined, { timeout: 60_000 });
  await page.click('tr[data-run="cut"] button.cancel');
  await page.waitForSelector('tr[data-run="cut"][data-state="cancelled"]', { timeout: 60_000 });
  await ui.app.close();
  const second = await serve();
  await page.goto(`${second.base}/?token=${second.ui.token}`);
  await page.click('nav button[data-tab="train"]');
  await page.waitForSelector('tr[data-run="cut"][data-state="incomplete"]');
  await page.click('tr[data-run="cut"] button.resume');
  await page.waitForSelector('tr[data-run="cut"][data-state="finished"]', { timeout: 60_000 });
  assert.ok(
    second.ui.queue.get('cut')?.events.some((e) => e.type === 'note' && /^resuming /.test(e.message)),
    'the run resumed from its checkpoint',
  );
  const history = fs
    .readFileSync(path.join(runs, 'cut', 'metrics.jsonl'), 'utf8')
    .trim()
    .split('\n');
  assert.equal(history.length, 12, 'the resumed run has each of its 12 epochs once');

  // Compare: the config keys that differ, and the curves overlaid
  await page.click('nav button[data-tab="compare"]');
  await page.click('#compare');
  await page.waitForSelector('#config-diff');
  const diff = await page.$$eval('#config-diff tr', (rows) => rows.map((r) => [...r.children].map((c) => c.textContent)));
  assert.deepEqual(
    diff
      .find((r) => r[0] === 'train.epochs')
      ?.slice(1)
      .sort(),
    ['12', '3'],
  );
  await page.waitForSelector('#compare-curves svg');
  // the tune study below: its trials (one pruned), best-so-far and parallel coordinates
  await page.waitForSelector('#study-parallel svg');
  assert.equal(await page.locator('#study-trials tr[data-state="pruned"]').count(), 1);
  assert.match(await page.textContent('#study-best').then(String), /best: trial 4, val_acc 0\.8100/);
  await shot(page, 'compare');

  // Data again: images chosen for a new class land in a new class folder, and the look shows it
  await page.click('nav button[data-tab="data"]');
  await page.waitForSelector('.class-card.new');
  await page.fill('#new-class', 'teal');
  await page.setInputFiles('.class-card.new .add-images', [path.join(data, 'olive', '0.png'), path.join(data, 'olive', '1.png')]);
  await page.waitForSelector('.class-card[data-class="teal"]');
  assert.equal(await page.textContent('.class-card[data-class="teal"] .count'), '2');
  assert.deepEqual(fs.readdirSync(path.join(data, 'teal')).sort(), ['0.png', '1.png']);
  assert.deepEqual(errors, [], 'no script errors on the page');
});
