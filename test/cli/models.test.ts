/**
 * `graft models`: the registry listing, `show`, and `fetch` against a local HTTP server on 127.0.0.1 serving a
 * small generated ONNX model (entries come from a GRAFT_REGISTRY file): download + verify, the cached copy
 * returned with the server gone, and one clear error (with nothing left in the cache) for a checksum mismatch,
 * an HTTP 404, an HTML page, a stalled transfer and an unreachable server; plus nsfwjs conversion into the cache.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import type http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { encodeModel } from '../../src/onnx/io.js';
import { Network } from '../../src/train/network.js';
import { runGraft } from '../cli-run.js';
import { startLoopback, stopLoopback } from '../loopback.js';
import { buildModel } from '../onnx/helpers.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'graft-models-'));
const cache = path.join(tmp, 'cache');
const registry = path.join(tmp, 'registry.json');
const badRegistry = path.join(tmp, 'bad-registry.json');
const onnx = encodeModel(buildModel());
const sha = createHash('sha256').update(onnx).digest('hex');
const requests: string[] = [];
let server: http.Server;
let base = '';

before(async () => {
  ({ server, base } = await startLoopback((req, res) => {
    requests.push(req.url ?? '');
    if (req.url === '/tiny.onnx') res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': onnx.length }).end(onnx);
    else if (req.url === '/stall.onnx')
      res.writeHead(200, { 'content-length': onnx.length }).write(onnx.subarray(0, 10)); // then nothing
    else if (req.url === '/login.onnx') res.writeHead(200, { 'content-type': 'text/html' }).end('<!doctype html><html><body>Please sign in</body></html>');
    else res.writeHead(404, { 'content-type': 'text/plain' }).end('not found');
  }));
  const pre = { size: 4, channels: 1, resize: 'stretch', mean: [0.5], std: [0.25] };
  const entry = (name: string, download: object) => ({ name, description: `test model ${name}`, preprocess: pre, download });
  const models = [
    entry('tiny', { url: `${base}/tiny.onnx`, sha256: sha, size: onnx.length }),
    entry('tiny-badsum', { url: `${base}/tiny.onnx`, sha256: '0'.repeat(64), size: onnx.length }),
    entry('tiny-404', { url: `${base}/moved.onnx` }),
    entry('tiny-html', { url: `${base}/login.onnx` }),
    entry('tiny-stall', { url: `${base}/stall.onnx` }),
  ];
  fs.writeFileSync(badRegistry, JSON.stringify({ models: [entry('broken', { url: 'ftp://example.org/x.onnx', sha256: 'abc' })] }));
  fs.writeFileSync(registry, JSON.stringify({ models }));
});
after(() => {
  stopLoopback(server);
  fs.rmSync(tmp, { recursive: true, force: true });
});

type Run = { code: number | null; stdout: string; stderr: string };

/** Runs bin/graft.js from source as a subprocess, exactly as a user would (without blocking this process, the HTTP server). */
function graftProcess(args: string[]): Promise<Run> {
  return runGraft(args, tmp, { GRAFT_REGISTRY: registry, GRAFT_MODELS_DIR: cache });
}

/**
 * Runs the CLI in this process (same program as bin/graft.js, without a second tsx start-up per call), capturing
 * stdout and stderr. Calls must not overlap.
 */
async function graft(args: string[], env: Record<string, string> = {}): Promise<Run> {
  const { main } = await import('../../src/cli/index.js');
  const saved = { env: { ...process.env }, cwd: process.cwd(), out: process.stdout.write, err: process.stderr.write };
  Object.assign(process.env, { GRAFT_REGISTRY: registry, GRAFT_MODELS_DIR: cache, GRAFT_DEBUG: '', ...env });
  process.chdir(tmp);
  let stdout = '';
  let stderr = '';
  // graft writes strings; anything else (the test runner's own binary reports to its parent) passes through
  const capture = (stream: NodeJS.WriteStream, orig: typeof process.stdout.write, add: (s: string) => void) =>
    ((chunk: unknown, ...rest: unknown[]) => {
      if (typeof chunk !== 'string') return (orig as (...a: unknown[]) => boolean).call(stream, chunk, ...rest);
      add(chunk);
      return true;
    }) as typeof process.stdout.write;
  process.stdout.write = capture(process.stdout, saved.out, (s) => (stdout += s));
  process.stderr.write = capture(process.stderr, saved.err, (s) => (stderr += s));
  try {
    const code = await main(['node', 'graft', ...args]);
    return { code, stdout, stderr };
  } finally {
    process.stdout.write = saved.out;
    process.stderr.write = saved.err;
    process.chdir(saved.cwd);
    process.env = saved.env;
    process.exitCode = 0;
  }
}

/** Runs CLI calls one after the other (in-process runs share stdout). */
async function each(...runs: [string[], Record<string, string>?][]): Promise<Run[]> {
  const out: Run[] = [];
  for (const [args, env] of runs) out.push(await graft(args, env));
  return out;
}

/** Asserts a failed run: exit 1, nothing on stdout, one "graft: error:" line matching `re`. */
function oneError(r: { code: number | null; stdout: string; stderr: string }, re: RegExp): void {
  assert.equal(r.code, 1, r.stderr);
  assert.equal(r.stdout, '');
  const lines = r.stderr
    .trimEnd()
    .split('\n')
    .filter((l) => !l.startsWith('{"event":"progress"')); // progress goes to stderr as JSON lines off a terminal
  assert.equal(lines.length, 1, r.stderr);
  assert.match(lines[0]!, /^graft: error: /);
  assert.match(lines[0]!, re);
}

const cached = () => (fs.existsSync(cache) ? fs.readdirSync(cache).sort() : []);

test('graft models lists built-in and GRAFT_REGISTRY entries with their preprocessing; show gives the export command', async () => {
  const [list, alias, json, show, timm, unknown, noRegistry, invalidRegistry, typo] = await each(
    [['models']],
    [['models', 'list']],
    [['--json', 'models']],
    [['models', 'show', 'torchvision:resnet18']],
    [['--json', 'models', 'show', 'timm:efficientnet_b0.ra_in1k']],
    [['models', 'show', 'resnet19']],
    [['models'], { GRAFT_REGISTRY: path.join(tmp, 'missing.json') }],
    [['models', 'show', 'resnet18'], { GRAFT_REGISTRY: badRegistry }],
    [['models', 'lsit']],
  );
  assert.equal(list.code, 0, list.stderr);
  assert.equal(alias.stdout, list.stdout, '`graft models` is `graft models list`');
  assert.match(list.stdout, /^model\s+family\s+input\s+resize\s+mean \/ std\s+interp\.\s+features\s+weights/);
  assert.match(list.stdout, /\nresnet18\s+torchvision\s+224x224\s+crop 87\.5% \(256\)\s+ImageNet\s+bilinear\s+512\s+export \(PyTorch\)/);
  assert.match(list.stdout, /\nefficientnet_b0\s+torchvision\s+224x224\s+crop 87\.5% \(256\)\s+ImageNet\s+bicubic\s+1280/);
  assert.match(list.stdout, /\nnsfwjs:InceptionV3\s+nsfwjs\s+299x299\s+stretch\s+0 \/ 1\s+bilinear\s+2048\s+npm nsfwjs/);
  assert.match(list.stdout, /\ntiny\s+onnx\s+4x4\s+stretch\s+0\.5 \/ 0\.25\s+bilinear\s+\?\s+download/);

  const rows = JSON.parse(json.stdout) as { name: string; source: string; preprocess: { size: number[]; cropFraction: number }; cache: { state: string } }[];
  for (const n of ['resnet18', 'resnet50', 'mobilenet_v2', 'mobilenet_v3_small', 'efficientnet_b0', 'nsfwjs:MobileNetV2', 'nsfwjs:InceptionV3', 'tiny'])
    assert.ok(
      rows.some((r) => r.name === n),
      `${n} listed`,
    );
  const r50 = rows.find((r) => r.name === 'resnet50')!;
  assert.equal(Math.round(224 / r50.preprocess.cropFraction), 232, 'resnet50 (IMAGENET1K_V2) resizes to 232');
  assert.equal(rows.find((r) => r.name === 'nsfwjs:MobileNetV2')!.source, 'nsfwjs');
  assert.equal(rows.find((r) => r.name === 'tiny')!.cache.state, 'missing');

  assert.equal(show.code, 0, show.stderr);
  assert.match(show.stdout, /^resnet18 \(torchvision:resnet18\) — /);
  assert.match(show.stdout, /preprocess 224x224 RGB, resize to 256 then centre-crop \(87\.5%\), bilinear/);
  assert.match(show.stdout, /mean \[0\.485, 0\.456, 0\.406\], std \[0\.229, 0\.224, 0\.225\]/);
  assert.match(
    show.stdout,
    /torchvision\.models\.resnet18\(weights='DEFAULT'\)\.eval\(\); torch\.onnx\.export\(m, torch\.randn\(1, 3, 224, 224\), 'resnet18\.onnx'/,
  );
  assert.match(show.stdout, /training=torch\.onnx\.TrainingMode\.PRESERVE/, 'BN nodes are kept for fine-tuning');
  assert.match(show.stdout, /then\s+graft models fetch resnet18 --url resnet18\.onnx/);
  assert.match(show.stdout, /cache\s+.*resnet18\.onnx \(not fetched\)/);

  const t = JSON.parse(timm.stdout);
  assert.equal(t.family, 'timm');
  assert.equal(t.resolvedPreprocess.interpolation, 'bicubic');
  assert.match(t.export, /timm\.create_model\('efficientnet_b0\.ra_in1k', pretrained=True\)/);

  oneError(unknown, /Unknown model "resnet19"\. Did you mean resnet18.*Known models: .*nsfwjs:MobileNetV2.*GRAFT_REGISTRY/);
  oneError(noRegistry, /Could not read model registry .*missing\.json: no such file or folder \(ENOENT\).*GRAFT_REGISTRY/);
  oneError(
    invalidRegistry,
    /Invalid model registry .*bad-registry\.json \(GRAFT_REGISTRY\): models\.0\.download\.url: must be an http:\/\/ or https:\/\/ URL; models\.0\.download\.sha256: must be 64 hexadecimal digits\./,
  );
  oneError(typo, /Unknown subcommand "lsit" of graft models\. Use graft models \[list\], graft models show <name> or graft models fetch <name>\./);
});

test('graft models fetch downloads, verifies and caches; errors leave nothing behind', async () => {
  const ok = await graftProcess(['--json', 'models', 'fetch', 'tiny']);
  assert.equal(ok.code, 0, ok.stderr);
  const r = JSON.parse(ok.stdout);
  assert.equal(r.path, path.join(cache, 'tiny.onnx'));
  assert.equal(r.cached, false);
  assert.equal(r.sha256, sha);
  assert.equal(r.bytes, onnx.length);
  assert.deepEqual(fs.readFileSync(r.path), Buffer.from(onnx));
  assert.match(ok.stderr, /"event":"progress","label":"fetch tiny".*"final":true/, 'JSON progress lines off a terminal');
  assert.deepEqual(cached(), ['tiny.json', 'tiny.onnx']);
  const net = Network.load(r.path);
  assert.deepEqual(net.preprocess?.size, [4, 4], 'Network.load reads the preprocessing from the sidecar');
  assert.deepEqual(net.preprocess?.mean, [0.5]);
  assert.deepEqual(requests, ['/tiny.onnx']);

  // a local export put into the cache for a torchvision entry, with that entry's preprocessing
  const exported = path.join(tmp, 'resnet18.onnx');
  fs.writeFileSync(exported, onnx);
  const [local, badsum, missing, html, stall, noSource, badFlag] = await each(
    [['models', 'fetch', 'resnet18', '--url', 'resnet18.onnx']],
    [['models', 'fetch', 'tiny-badsum']],
    [['models', 'fetch', 'tiny-404']],
    [['models', 'fetch', 'tiny-html']],
    [['models', 'fetch', 'tiny-stall'], { GRAFT_DOWNLOAD_TIMEOUT_MS: '300' }],
    [['models', 'fetch', 'mobilenet_v2']],
    [['models', 'fetch', 'tiny', '--sha256', 'abc']],
  );
  assert.equal(local.code, 0, local.stderr);
  assert.equal(local.stdout.trim(), path.join(cache, 'resnet18.onnx'), 'text output is the path, for $(graft models fetch …)');
  assert.match(local.stderr, /resnet18: fetched .* from .*resnet18\.onnx, sha256 [0-9a-f]{64}; preprocessing in .*resnet18\.json/);
  const side = JSON.parse(fs.readFileSync(path.join(cache, 'resnet18.json'), 'utf8'));
  assert.deepEqual(side.preprocess.size, [224, 224]);
  assert.deepEqual(side.preprocess.mean, [0.485, 0.456, 0.406]);
  assert.equal(side.sha256, sha);

  oneError(badsum, /Checksum mismatch for http:\/\/127\.0\.0\.1:\d+\/tiny\.onnx: SHA-256 [0-9a-f]{64}, expected 0{64}\. .*it was deleted/);
  oneError(missing, /Could not download http:\/\/127\.0\.0\.1:\d+\/moved\.onnx: HTTP 404 Not Found\. The file is not there .*--url/);
  oneError(html, /login\.onnx is not usable: it is an HTML page, not an ONNX model/);
  oneError(
    stall,
    /Download of http:\/\/127\.0\.0\.1:\d+\/stall\.onnx stalled \(no data for 0\.3 s\) and was abandoned\..*kept in .*tiny-stall\.onnx\.part; the next fetch resumes/,
  );
  oneError(
    noSource,
    /mobilenet_v2 has no download: its ONNX weights are exported from PyTorch\. Run .*TrainingMode\.PRESERVE.*graft models fetch mobilenet_v2 --url mobilenet_v2\.onnx/,
  );
  oneError(badFlag, /--sha256 must be 64 hexadecimal digits/);
  assert.deepEqual(
    cached(),
    ['resnet18.json', 'resnet18.onnx', 'tiny-stall.onnx.part', 'tiny-stall.onnx.part.json', 'tiny.json', 'tiny.onnx'],
    'no rejected file is left in the cache; only the stalled transfer keeps its .part for a resume',
  );
});

test('graft models fetch works offline for cached models; --force without a network is one clear error and keeps the cached copy', async () => {
  server.closeAllConnections();
  await new Promise<void>((resolve) => server.close(() => resolve()));
  const seen = requests.length;
  // fresh processes, as after a reboot without network (this process's fetch may still hold a pooled socket)
  const [again, force, uncached] = await Promise.all([
    graftProcess(['--json', 'models', 'fetch', 'TINY']),
    graftProcess(['models', 'fetch', 'tiny', '--force']),
    graftProcess(['models', 'fetch', 'tiny-404']),
  ]);
  assert.equal(again.code, 0, again.stderr);
  const r = JSON.parse(again.stdout);
  assert.equal(r.cached, true);
  assert.equal(r.path, path.join(cache, 'tiny.onnx'));
  assert.equal(r.sha256, sha);
  oneError(force, /Could not download http:\/\/127\.0\.0\.1:\d+\/tiny\.onnx: the connection was refused .*\(ECONNREFUSED\)\. Check your network connection/);
  oneError(uncached, /Could not download .*moved\.onnx: the connection was refused/);
  assert.equal(requests.length, seen, 'the server is gone');
  assert.deepEqual(fs.readFileSync(path.join(cache, 'tiny.onnx')), Buffer.from(onnx), 'the cached copy is intact');
  assert.deepEqual(cached(), ['resnet18.json', 'resnet18.onnx', 'tiny-stall.onnx.part', 'tiny-stall.onnx.part.json', 'tiny.json', 'tiny.onnx']);

  const list = await graft(['models']);
  assert.match(list.stdout, /\nresnet18\s.*\scached\n/);
  assert.match(list.stdout, /\ntiny\s.*\scached\n/);
});

test('graft models fetch nsfwjs:<name> converts the bundled model into the cache, then returns it without converting again', async () => {
  const first = await graft(['--json', 'models', 'fetch', 'nsfwjs:MobileNetV2']);
  assert.equal(first.code, 0, first.stderr);
  const r = JSON.parse(first.stdout);
  assert.equal(r.path, path.join(cache, 'nsfwjs-mobilenetv2.onnx'));
  assert.equal(r.cached, false);
  const net = Network.load(r.path);
  assert.deepEqual(net.labels, ['Drawing', 'Hentai', 'Neutral', 'Porn', 'Sexy']);
  assert.deepEqual(net.preprocess?.size, [224, 224]);
  assert.equal(net.cut, 'flatten_1');
  const second = await graft(['--json', 'models', 'fetch', 'nsfwjs:mobilenetv2']);
  assert.equal(JSON.parse(second.stdout).cached, true);
});
