/**
 * The acceptance test of the web bundle: `writeWebBundle` output served from a loopback static server, loaded in a
 * real Chromium (playwright-core), images picked in the demo page's file input; each image's top-1 must equal
 * `graft predict`'s (classifyFiles), every probability must agree within 1e-4, and the model input the page computes
 * (browser decode + the libvips port) must equal graft's decodeImage bit for bit. Images: PNG and JPEG, grown and
 * shrunk (by more than 2: box shrink first), square and not. Two bundles: 'crop' + bilinear (in model/), and 'pad' +
 * bicubic through --preprocess; and examples/browser/my-page.html, the module API from a page of one's own.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import type http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import type { Browser } from 'playwright-core';
import { decodeImage } from '../../src/data/image.js';
import { writeWebBundle } from '../../src/run/web-bundle.js';
import { classifyFiles, loadClassifier } from '../../src/train/classify.js';
import { launchBrowser } from '../browser.js';
import { serveFolder, startLoopback, stopLoopback } from '../loopback.js';
import { LABELS, saveSpatialModel, writeTestImage } from './fixtures.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'graft-web-'));
const modelDir = path.join(tmp, 'run');
const padConfig = path.join(tmp, 'pad.json');
/** [file name, width, height]: PNG grown, PNG shrunk ×12.5 (not square), JPEG shrunk ×1.3, JPEG grown, PNG square */
const IMAGES: [string, number, number][] = [
  ['tiny.png', 9, 7],
  ['wide.png', 300, 120],
  ['small.jpg', 30, 26],
  ['thumb.jpg', 13, 11],
  ['square.png', 64, 64],
];
let browser: Browser | undefined;
let server: http.Server | undefined;
let base = '';

before(async () => {
  saveSpatialModel(path.join(modelDir, 'model.onnx'), { size: [20, 24], resize: 'crop', mean: [0.485, 0.456, 0.406], std: [0.229, 0.224, 0.225] });
  fs.writeFileSync(
    padConfig,
    JSON.stringify({ size: [20, 24], resize: 'pad', interpolation: 'bicubic', layout: 'NCHW', padValue: 114, mean: [0.5], std: [0.25] }),
  );
  for (const [name, w, h] of IMAGES) await writeTestImage(path.join(tmp, 'site', 'images', name), w, h, w * 7 + h);
  await writeWebBundle(modelDir, path.join(tmp, 'site', 'model'));
  fs.copyFileSync(fileURLToPath(new URL('../../examples/browser/my-page.html', import.meta.url)), path.join(tmp, 'site', 'my-page.html'));
  await writeWebBundle(path.join(modelDir, 'model.onnx'), path.join(tmp, 'site', 'pad'), { preprocessFile: padConfig, threshold: 0.9 });
  const root = path.join(tmp, 'site');
  ({ server, base } = await startLoopback(serveFolder(root)));
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  stopLoopback(server);
  fs.rmSync(tmp, { recursive: true, force: true });
});

interface PageResult {
  name: string;
  top?: string;
  probabilities?: number[];
  error?: string;
  /** The page marked it "unknown" (top probability under the bundle's threshold). */
  unknown?: boolean;
  /** The float32 model input the page computed. */
  input?: number[];
}

/** Opens the bundle's demo page, picks every test image in its file input and reads back each result. */
async function classifyInPage(bundle: string): Promise<PageResult[]> {
  const page = await browser!.newPage();
  const problems: string[] = [];
  page.on('pageerror', (e) => problems.push(e.message));
  try {
    await page.goto(`${base}/${bundle}/index.html`);
    await page.waitForSelector('body[data-ready], body[data-error]', { timeout: 60_000 });
    const error = await page.getAttribute('body', 'data-error');
    assert.equal(error, null, `the page failed to load the model: ${error}`);
    await page.setInputFiles(
      '#file',
      IMAGES.map(([name]) => path.join(tmp, 'site', 'images', name)),
    );
    await page.waitForFunction((n) => document.querySelectorAll('#results figure').length === n, IMAGES.length, { timeout: 60_000 });
    assert.deepEqual(problems, []);
    const results: PageResult[] = await page.$$eval('#results figure', (figs) =>
      figs.map((f) => {
        const d = (f as HTMLElement).dataset;
        return {
          name: d.name!,
          top: d.top,
          error: d.error,
          unknown: !!f.querySelector('.unknown'),
          probabilities: d.probabilities ? (JSON.parse(d.probabilities) as number[]) : undefined,
        };
      }),
    );
    // the model input the page computed for each image (decodeBlob + preprocessPixels, as classifyBlob does)
    const inputs = await page.evaluate(
      async (names) => {
        const web = await import('./graft/web/index.js' as string);
        const meta = await (await fetch('./model.json')).json();
        const out: number[][] = [];
        for (const n of names)
          out.push(Array.from(web.preprocessPixels(await web.decodeBlob(await (await fetch(`../images/${n}`)).blob()), meta.preprocess) as Float32Array));
        return out;
      },
      IMAGES.map(([name]) => name),
    );
    for (const [i, r] of results.entries()) r.input = inputs[i];
    return results;
  } finally {
    await page.close();
  }
}

for (const bundle of ['model', 'pad'] as const) {
  test(`the ${bundle} bundle's page gives graft predict's top-1 and probabilities within 1e-4`, async (t) => {
    const clf = await loadClassifier(path.join(modelDir, 'model.onnx'), bundle === 'pad' ? padConfig : undefined);
    const files = IMAGES.map(([name]) => path.join(tmp, 'site', 'images', name));
    const ref = await classifyFiles(clf, files, { strict: true });
    const got = await classifyInPage(bundle);
    assert.deepEqual(
      got.map((r) => r.name),
      IMAGES.map(([name]) => name),
    );
    let maxDiff = 0;
    const cfg = clf.preprocess;
    for (const [i, r] of got.entries()) {
      const want = await decodeImage(files[i]!, cfg);
      const bad = want.findIndex((v, j) => !Object.is(v, Math.fround(r.input![j]!)));
      assert.ok(
        r.input?.length === want.length && bad < 0,
        `${r.name}: the page's model input differs from graft's at value ${bad}: ${r.input?.[bad]} vs ${want[bad]}`,
      );
    }
    for (const [i, r] of got.entries()) {
      assert.equal(r.error, undefined, `${r.name}: ${r.error}`);
      const want = Array.from(ref.probabilities.subarray(i * LABELS.length, (i + 1) * LABELS.length));
      const best = want.indexOf(Math.max(...want));
      assert.equal(r.top, LABELS[best], `${r.name}: the page says ${r.top}, graft predict ${LABELS[best]} (${want.map((p) => p.toFixed(4)).join(' ')})`);
      assert.equal(r.probabilities?.length, LABELS.length);
      // the pad bundle was exported with --threshold 0.9, as graft predict --threshold 0.9 would label it
      assert.equal(r.unknown, bundle === 'pad' && Math.max(...want) < 0.9, `${r.name}: "unknown" mark`);
      for (const [j, p] of r.probabilities!.entries()) maxDiff = Math.max(maxDiff, Math.abs(p - want[j]!));
    }
    t.diagnostic(`${bundle}: ${got.length} images, top-1 agreement ${got.length}/${got.length}, max |Δp| = ${maxDiff.toExponential(2)}`);
    assert.ok(maxDiff <= 1e-4, `max |Δp| ${maxDiff} is over 1e-4`);
  });
}

test('examples/browser/my-page.html classifies a picked image with the bundle in ./model/, as graft predict does', async () => {
  const file = path.join(tmp, 'site', 'images', 'wide.png');
  const clf = await loadClassifier(path.join(modelDir, 'model.onnx'));
  const ref = await classifyFiles(clf, [file], { strict: true });
  const p = Array.from(ref.probabilities);
  const want = LABELS[p.indexOf(Math.max(...p))]!;
  const page = await browser!.newPage();
  try {
    await page.goto(`${base}/my-page.html`);
    await page.waitForFunction(() => document.getElementById('answer')?.textContent?.startsWith('ready'), undefined, { timeout: 60_000 });
    await page.setInputFiles('#pick', file);
    await page.waitForFunction(() => document.getElementById('answer')?.textContent?.includes('%'), undefined, { timeout: 60_000 });
    const answer = (await page.textContent('#answer')) ?? '';
    assert.equal(answer.split(' ')[0], want, `the page answered "${answer}", graft predict says ${want}`);
    assert.match(answer, new RegExp(`^${want} ${(100 * Math.max(...p)).toFixed(1)} %`));
  } finally {
    await page.close();
  }
});
