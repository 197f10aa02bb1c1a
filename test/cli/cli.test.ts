import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { saveModel } from '../../src/onnx/io.js';
import { DEFAULT_LR } from '../../src/optim/defaults.js';
import { buildModel } from '../onnx/helpers.js';

const bin = fileURLToPath(new URL('../../bin/graft.js', import.meta.url));
const pkg = JSON.parse(fs.readFileSync(fileURLToPath(new URL('../../package.json', import.meta.url)), 'utf8')) as { version: string };
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'graft-cli-'));
after(() => fs.rmSync(tmp, { recursive: true, force: true }));

/** Runs bin/graft.js as a subprocess, from source (GRAFT_FROM_SOURCE=1), exactly as `npx graft` would in development. */
function graft(args: string[], env: Record<string, string> = {}) {
  const r = spawnSync(process.execPath, [bin, ...args], {
    encoding: 'utf8',
    env: { ...process.env, GRAFT_FROM_SOURCE: '1', GRAFT_DEBUG: '', NODE_OPTIONS: '', ...env },
    timeout: 120_000,
  });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

function modelFile(): string {
  const m = buildModel();
  m.metadata['graft.preprocess'] = JSON.stringify({ size: [4, 4], channels: 1, resize: 'stretch', mean: [0.5], std: [0.25] });
  const file = path.join(tmp, 'tiny model.onnx');
  saveModel(m, file);
  return file;
}

test('graft --help and --version', () => {
  const h = graft(['--help']);
  assert.equal(h.code, 0, h.stderr);
  for (const s of ['Usage: graft', 'inspect', '--seed', '--threads', '--json', '--quiet']) assert.ok(h.stdout.includes(s), `help mentions ${s}`);
  const v = graft(['--version']);
  assert.equal(v.code, 0);
  assert.equal(v.stdout.trim(), pkg.version);
  const ih = graft(['inspect', '--help']);
  assert.equal(ih.code, 0);
  assert.match(ih.stdout, /Usage: graft inspect \[options\] <model>/);
});

test('graft train --help states the --lr default, from the one place it is set', () => {
  const h = graft(['train', '--help']);
  assert.equal(h.code, 0, h.stderr);
  const lr = h.stdout.match(/--lr <x>\s+(.*(?:\n\s{10,}.*)*)/)?.[1]?.replace(/\s+/g, ' ') ?? '';
  assert.ok(lr.includes(`default ${DEFAULT_LR.sgd} with sgd`) && lr.includes(`${DEFAULT_LR.adam} with adam`), `--lr help: ${lr}`);
});

test('graft inspect prints opset, producer, io shapes, ops, parameters, metadata and preprocessing', () => {
  const file = modelFile();
  const r = graft(['inspect', file]);
  assert.equal(r.code, 0, r.stderr);
  const out = r.stdout;
  assert.ok(out.startsWith(file), out);
  assert.match(out, /producer\s+graft-test/);
  assert.match(out, /ONNX IR 8, opset 17/);
  assert.match(out, /inputs\s+x\s+float32 \[N, 4\]/);
  assert.match(out, /outputs\s+y\s+float32 \[3, M\]/);
  assert.match(out, /nodes\s+10: Constant 2, Mul 2, Add 1, Gemm 1, Pad 1, Relu 1, Transpose 1, Unsqueeze 1/);
  assert.match(out, /parameters 19 \(5 initializers/);
  assert.match(out, /metadata\s+author = tests/);
  assert.match(out, /preprocess\s+input: NCHW float32, 1x4x4/);
  assert.match(out, /cut\s+/);
  assert.equal(r.stderr, '');
});

test('graft --json inspect gives one JSON document', () => {
  const file = modelFile();
  const r = graft(['--json', 'inspect', '--nodes', file]);
  assert.equal(r.code, 0, r.stderr);
  const j = JSON.parse(r.stdout);
  assert.equal(j.opset, 17);
  assert.equal(j.producer, 'graft-test');
  assert.deepStrictEqual(j.inputs, [{ name: 'x', dtype: 'float32', shape: ['N', 4] }]);
  assert.equal(j.nodeCount, 10);
  assert.deepStrictEqual(j.ops[0], { op: 'Constant', count: 2 });
  assert.equal(j.parameters, 4 + 12 + 3, 'scale, W and B (float32 weights; int64 tensors are not parameters)');
  assert.equal(j.metadata.author, 'tests');
  assert.equal(j.preprocess.config.channels, 1);
  assert.equal(j.nodes.length, 10);
});

test('errors: one line, exit code 1, no stack unless GRAFT_DEBUG=1', () => {
  const missing = path.join(tmp, 'missing.onnx');
  const r = graft(['inspect', missing]);
  assert.equal(r.code, 1);
  assert.equal(r.stdout, '');
  const lines = r.stderr.trimEnd().split('\n');
  assert.equal(lines.length, 1, r.stderr);
  assert.match(lines[0]!, /^graft: error: Could not read ONNX model .*missing\.onnx: no such file or folder \(ENOENT\)\. Check the path/);

  const corrupt = path.join(tmp, 'corrupt.onnx');
  fs.writeFileSync(corrupt, fs.readFileSync(modelFile()).subarray(0, 300));
  const c = graft(['inspect', corrupt]);
  assert.equal(c.code, 1);
  assert.match(c.stderr, /^graft: error: .*corrupt\.onnx .*truncated.*\n$/);

  const d = graft(['inspect', missing], { GRAFT_DEBUG: '1' });
  assert.equal(d.code, 1);
  assert.match(d.stderr, /^graft: error: .*\n.*\n\s+at /);

  for (const args of [['--bogus'], ['inspect'], ['inspec', 'x'], ['--threads', 'many', 'inspect', 'x']]) {
    const u = graft(args);
    assert.equal(u.code, 1, `${args.join(' ')} exits 1`);
    assert.match(u.stderr, /^graft: error: [^\n]+\n$/, `${args.join(' ')}: ${u.stderr}`);
  }
});
