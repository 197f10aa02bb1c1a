/**
 * Browser parity of `graft export --web`: a bundle served on 127.0.0.1, images classified in headless Chromium
 * through the bundle's module API, compared with graft predict (classifyFiles) on the same files. Reports per image
 * the max |Δ| of the model input, max |Δp|, top-1 agreement, and the page's decode + preprocess time vs sharp's.
 * Includes JPEGs shrunk by 2 or more, where sharp decodes with libjpeg's shrink-on-load and a browser cannot.
 *
 *   node --import tsx bench/web-parity.ts
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { decodeImage } from '../src/data/image.js';
import { writeWebBundle } from '../src/run/web-bundle.js';
import { classifyFiles, loadClassifier } from '../src/train/classify.js';
import { launchBrowser } from '../test/browser.js';
import { serveFolder, startLoopback, stopLoopback } from '../test/loopback.js';
import { LABELS, saveSpatialModel, writeTestImage } from '../test/web/fixtures.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'graft-web-bench-'));
const site = path.join(tmp, 'site');
const IMAGES: [string, number, number][] = [
  ['grow.png', 50, 40],
  ['shrink1.5.png', 48, 40],
  ['shrink8.png', 320, 260],
  ['photo.png', 1600, 1200],
  ['grow.jpg', 50, 40],
  ['shrink1.5.jpg', 48, 40],
  ['shrink3.jpg', 100, 90],
  ['shrink8.jpg', 320, 260],
  ['photo.jpg', 1600, 1200],
];

saveSpatialModel(path.join(tmp, 'run', 'model.onnx'), { size: [28, 32], resize: 'crop', mean: [0.485, 0.456, 0.406], std: [0.229, 0.224, 0.225] });
for (const [name, w, h] of IMAGES) await writeTestImage(path.join(site, 'images', name), w, h, w + 3 * h);
await writeWebBundle(path.join(tmp, 'run'), path.join(site, 'web'));
const clf = await loadClassifier(path.join(tmp, 'run', 'model.onnx'));
const files = IMAGES.map(([n]) => path.join(site, 'images', n));
const ref = await classifyFiles(clf, files, { strict: true });
const sharpMs: number[] = [];
const inputs: Float32Array[] = [];
for (const f of files) {
  const t = performance.now();
  inputs.push(await decodeImage(f, clf.preprocess));
  sharpMs.push(performance.now() - t);
}

const { server, base } = await startLoopback(serveFolder(site));
const browser = await launchBrowser();
try {
  const page = await browser.newPage();
  await page.goto(`${base}/web/index.html`);
  await page.waitForSelector('body[data-ready]', { timeout: 120_000 });
  const got = await page.evaluate(
    async (names) => {
      const web = await import('./graft/web/index.js' as string);
      const clf = await web.WebClassifier.load(new URL('./', location.href));
      const out = [];
      for (const n of names) {
        const blob = await (await fetch(`../images/${n}`)).blob();
        const t0 = performance.now();
        const px = await web.decodeBlob(blob);
        const t1 = performance.now();
        const x = clf.preprocess(px) as Float32Array;
        const t2 = performance.now();
        const r = await clf.classifyPixels(px, 1);
        out.push({ input: Array.from(x), p: Array.from(r.probabilities as Float32Array), decodeMs: t1 - t0, preprocessMs: t2 - t1 });
      }
      return out;
    },
    IMAGES.map(([n]) => n),
  );
  console.log(
    `machine: ${os.cpus().length} cores, load ${os
      .loadavg()
      .map((l) => l.toFixed(1))
      .join(' ')}; Chromium ${browser.version()}`,
  );
  console.log('| image | size | max abs Δ input | max abs Δp | top-1 | browser decode ms | browser preprocess ms | sharp decode+preprocess ms |');
  console.log('| --- | --- | --- | --- | --- | --- | --- | --- |');
  let agree = 0;
  for (const [i, [name, w, h]] of IMAGES.entries()) {
    const g = got[i]!;
    const want = Array.from(ref.probabilities.subarray(i * LABELS.length, (i + 1) * LABELS.length));
    const dx = Math.max(...g.input.map((v, j) => Math.abs(v - inputs[i]![j]!)));
    const dp = Math.max(...g.p.map((v, j) => Math.abs(v - want[j]!)));
    const same = g.p.indexOf(Math.max(...g.p)) === want.indexOf(Math.max(...want));
    if (same) agree++;
    console.log(
      `| ${name} | ${w}×${h} | ${dx.toExponential(2)} | ${dp.toExponential(2)} | ${same ? 'same' : 'DIFFERENT'} | ${g.decodeMs.toFixed(1)} | ${g.preprocessMs.toFixed(1)} | ${sharpMs[i]!.toFixed(1)} |`,
    );
  }
  console.log(`top-1 agreement ${agree}/${IMAGES.length}`);
} finally {
  await browser.close();
  stopLoopback(server);
  fs.rmSync(tmp, { recursive: true, force: true });
}
