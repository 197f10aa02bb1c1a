/**
 * The web bundle of a text model (`graft export --web`), served from a loopback static server and run in a real
 * Chromium: the page tokenizes in the browser (graft's own tokenizer module, and `@huggingface/tokenizers` bundled
 * by esbuild for a WordPiece tokenizer.json) and runs the model on onnxruntime-web; every probability must agree
 * with `graft predict`'s (classifyTexts) within 1e-5, for a TF-IDF and a BERT encoder, and the demo page answers
 * typed texts.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import type http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import type { Browser } from 'playwright-core';
import { writeWebBundle } from '../../src/run/web-bundle.js';
import { classifyTexts, loadTextClassifier } from '../../src/train/classify-text.js';
import { launchBrowser } from '../browser.js';
import { serveFolder, startLoopback, stopLoopback } from '../loopback.js';
import { SENTIMENT, saveTextModels, sentimentTexts } from '../text-fixtures.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'graft-web-text-'));
const site = path.join(tmp, 'site');
const TEXTS = [...sentimentTexts(6).texts, 'Großartig — I LOVE it!!', 'an awful, awful film and a very sad ending for everyone who watched it today', 'x'];
let models: { tfidf: string; bert: string };
let browser: Browser | undefined;
let server: http.Server | undefined;
let base = '';

before(async () => {
  models = await saveTextModels(tmp);
  await writeWebBundle(models.tfidf, path.join(site, 'tfidf'));
  await writeWebBundle(path.dirname(models.bert), path.join(site, 'bert'), { threshold: 0.99 });
  ({ server, base } = await startLoopback(serveFolder(site)));
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  stopLoopback(server);
  fs.rmSync(tmp, { recursive: true, force: true });
});

test("a text bundle holds the model, graft's tokenizer description and, for a Hugging Face tokenizer, the bundled library", () => {
  const tfidf = JSON.parse(fs.readFileSync(path.join(site, 'tfidf', 'model.json'), 'utf8'));
  assert.equal(tfidf.kind, 'text');
  assert.deepEqual(tfidf.labels, SENTIMENT.labels);
  assert.equal(tfidf.hfModule, undefined);
  assert.equal(JSON.parse(fs.readFileSync(path.join(site, 'tfidf', tfidf.tokenizer), 'utf8')).kind, 'hashed-words');
  const bert = JSON.parse(fs.readFileSync(path.join(site, 'bert', 'model.json'), 'utf8'));
  const hf = fs.readFileSync(path.join(site, 'bert', bert.hfModule), 'utf8');
  assert.doesNotMatch(hf, /\bimport\s*[{*("']|require\(/, 'the bundled tokenizers module imports nothing');
  // the browser code graft ships for text imports no package and no Node built-in
  for (const f of ['web/text.js', 'data/text-tokens.js', 'web/bundle.js']) {
    const js = fs.readFileSync(path.join(site, 'bert', 'graft', f), 'utf8');
    assert.doesNotMatch(js, /from\s*['"](?![./])/, f);
  }
});

for (const name of ['tfidf', 'bert'] as const) {
  test(`the ${name} bundle tokenizes in the browser and gives graft predict's probabilities within 1e-5`, async (t) => {
    const clf = await loadTextClassifier(models[name]);
    const want = (await classifyTexts(clf, TEXTS)).probabilities;
    await clf.session.release();
    const page = await browser!.newPage();
    const problems: string[] = [];
    page.on('pageerror', (e) => problems.push(e.message));
    try {
      await page.goto(`${base}/${name}/index.html`);
      await page.waitForSelector('body[data-ready], body[data-error]', { timeout: 60_000 });
      assert.equal(await page.getAttribute('body', 'data-error'), null);
      // the module API: the whole list in one run, and each text alone (its ids padded differently)
      const got = await page.evaluate(async (texts) => {
        const web = await import('./graft/web/index.js' as string);
        const clf = await web.WebTextClassifier.load(new URL('./', location.href));
        const all = await clf.classifyTexts(texts, 2);
        const alone = [];
        for (const text of texts) alone.push(...(await clf.classifyTexts([text], 2)));
        const ids = texts.map((x: string) => clf.tokenizer.encode(x));
        return {
          all: all.map((x: { probabilities: Float32Array; unknown: boolean }) => ({ p: Array.from(x.probabilities), unknown: x.unknown })),
          alone: alone.map((x: { probabilities: Float32Array; unknown: boolean }) => ({ p: Array.from(x.probabilities), unknown: x.unknown })),
          ids,
        };
      }, TEXTS);
      let maxDiff = 0;
      for (const rows of [got.all, got.alone])
        rows.forEach((r, i) => {
          r.p.forEach((p, j) => {
            maxDiff = Math.max(maxDiff, Math.abs(p - want[i * 2 + j]!));
          });
          assert.equal(r.unknown, name === 'bert' && Math.max(...r.p) < 0.99);
        });
      const node = makeIds(name);
      assert.deepEqual(got.ids, node, 'the browser tokenizes as graft does on Node');
      t.diagnostic(`${name}: ${TEXTS.length} texts, max |Δp| = ${maxDiff.toExponential(2)}`);
      assert.ok(maxDiff <= 1e-5, `max |Δp| ${maxDiff} is over 1e-5`);
      // the demo page: texts typed one per line
      await page.fill('#texts', TEXTS.slice(0, 3).join('\n'));
      await page.click('#go');
      await page.waitForFunction(() => document.querySelectorAll('#results .result').length === 3, undefined, { timeout: 30_000 });
      const tops = await page.$$eval('#results .result', (rs) => rs.map((r) => (r as HTMLElement).dataset.top));
      assert.deepEqual(
        tops,
        [0, 1, 2].map((i) => SENTIMENT.labels[want[i * 2 + 1]! > want[i * 2]! ? 1 : 0]),
      );
      assert.deepEqual(problems, []);
    } finally {
      await page.close();
    }
  });
}

/** Token ids of TEXTS by graft's Node tokenizer for the model `name`. */
function makeIds(name: 'tfidf' | 'bert'): number[][] {
  const spec = JSON.parse(fs.readFileSync(path.join(site, name, 'model.tokenizer.json'), 'utf8'));
  // the Node side: data/tokenize.ts (with @huggingface/tokenizers from node_modules)
  return TEXTS.map((x) => nodeTokenizers[name]!(spec).encode(x));
}
const nodeTokenizers: Record<string, (spec: never) => { encode(t: string): number[] }> = {};
before(async () => {
  const { makeTokenizer } = await import('../../src/data/tokenize.js');
  nodeTokenizers.tfidf = nodeTokenizers.bert = (spec) => makeTokenizer(spec);
});
