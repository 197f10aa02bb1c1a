/** `graft adapt` in-process (commander program with the adapt command): a tiny folder run and the bad-input errors. */
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { buildProgram } from '../../src/cli/index.js';
import { mlp } from '../../src/nn/index.js';
import { loadModel, saveModel } from '../../src/onnx/io.js';
import { DEFAULT_ARCH_WIDTH } from '../../src/run/config.js';
import { GRAFT_BIN, runGraft } from '../cli-run.js';
import { brightnessImages } from './images.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'graft-adapt-'));
after(() => fs.rmSync(tmp, { recursive: true, force: true }));

/** Runs `graft adapt …` in this process through the real program (errors reject; the table goes to stdout). */
async function graft(args: string[]): Promise<void> {
  await buildProgram().parseAsync(['node', 'graft', '--quiet', 'adapt', ...args]);
}

before(async () => {
  await brightnessImages(path.join(tmp, 'src'), 12, 0);
  await brightnessImages(path.join(tmp, 'tgt'), 12, 40, false);
  await brightnessImages(path.join(tmp, 'tgt-eval'), 6, 40);
  fs.mkdirSync(path.join(tmp, 'empty', 'sub'), { recursive: true });
  fs.writeFileSync(path.join(tmp, 'empty', 'notes.txt'), 'no images here');
  fs.writeFileSync(path.join(tmp, 'labelled.csv'), `path,label\n${path.join(tmp, 'src', 'dark', 'dark-0.png')},dark\n`);
});

const common = ['--image-size', '8', '--channels', '1', '--epochs', '1', '--batch-size', '4', '--val-split', '0.25'];

test('graft adapt --compare prints one table over seeds, and --out writes the results', async () => {
  const src = path.join(tmp, 'src');
  await graft([
    '--source',
    src,
    '--target',
    path.join(tmp, 'tgt'),
    '--target-eval',
    path.join(tmp, 'tgt-eval'),
    ...common,
    '--compare',
    'source-only,mcc',
    '--seeds',
    '0,1',
    '--out',
    path.join(tmp, 'run'),
  ]);
  const out = fs.readFileSync(path.join(tmp, 'run', 'report.md'), 'utf8');
  // IM picks each run's checkpoint by default (SND, the old default, picked near-uniform ones: docs/benchmarks.md)
  assert.match(out, /\| method \| target acc % \(im-picked\) \| target acc % \(last\) \| source val acc % \| SND/);
  assert.match(out, /\| source-only \| \d+\.\d ± \d+\.\d \|/);
  assert.match(out, /\| mcc \| \d+\.\d ± \d+\.\d \|/);
  const doc = JSON.parse(fs.readFileSync(path.join(tmp, 'run', 'results.json'), 'utf8'));
  assert.equal(doc.runs.length, 4);
  assert.equal(doc.selectBy, 'im');
  for (const r of doc.runs as { selected: { target_im: number }; history: { target_im: number }[] }[])
    assert.equal(r.selected.target_im, Math.max(...r.history.map((h) => h.target_im)), 'the selected checkpoint has the highest IM');
  await graft(['--source', src, '--target', path.join(tmp, 'tgt'), ...common, '--method', 'dann', '--out', path.join(tmp, 'one')]);
  assert.match(fs.readFileSync(path.join(tmp, 'one', 'report.md'), 'utf8'), /\| dann \|/);
  assert.ok(fs.existsSync(path.join(tmp, 'one', 'model.onnx')) && fs.existsSync(path.join(tmp, 'one', 'model.json')));
});

test('graft adapt --method auto runs the candidates, picks by the validator and saves the pick', async () => {
  const out = path.join(tmp, 'auto');
  const args = ['--source', path.join(tmp, 'src'), '--target', path.join(tmp, 'tgt'), '--target-eval', path.join(tmp, 'tgt-eval'), ...common];
  await graft([...args, '--method', 'auto', '--candidates', 'source-only,mcc,coral', '--validator', 'im', '--ensemble', '2', '--out', out]);
  const doc = JSON.parse(fs.readFileSync(path.join(out, 'results.json'), 'utf8'));
  assert.deepEqual(doc.methods, ['source-only', 'mcc', 'coral']);
  assert.equal(doc.auto.validator, 'im');
  const ims = doc.auto.candidates.map((c: { target_im: number }) => c.target_im);
  const pick = doc.auto.candidates[ims.indexOf(Math.max(...ims))];
  assert.deepEqual(doc.auto.pick, { method: pick.method, seed: 0 });
  const report = fs.readFileSync(path.join(out, 'report.md'), 'utf8');
  assert.match(report, /\| method \| seed \| SND \| target entropy \| IM \| target acc % \(reported only\) \| picked by IM \|/);
  assert.match(report, /picked \S+: the highest IM .* of 3 candidates/);
  // --ensemble 2: model.onnx is the mean softmax of the two best by IM
  const second = doc.auto.candidates
    .filter((c: unknown) => c !== pick)
    .sort((a: { target_im: number }, b: { target_im: number }) => b.target_im - a.target_im)[0];
  assert.deepEqual(doc.auto.ensemble.members, [
    { method: pick.method, seed: 0 },
    { method: second.method, seed: 0 },
  ]);
  assert.match(report, /\| ensemble of 2 \| — \| .* \| \*\*exported\*\* \|/);
  assert.match(report, /Exported the mean softmax of the top 2 by IM/);
  const sidecar = JSON.parse(fs.readFileSync(path.join(out, 'model.json'), 'utf8'));
  assert.equal(sidecar.adapt.method, pick.method);
  assert.equal(sidecar.adapt.auto.ensemble.members.length, 2);
  assert.match(sidecar.adapt.auto.reason, /No target label was read/);
  await assert.rejects(graft([...args, '--method', 'mcc', '--candidates', 'mcc']), /--candidates \(adapt.candidates\) applies to --method auto only/);
  await assert.rejects(graft([...args, '--method', 'auto', '--candidates', 'mcc,nope']), /--candidates: unknown adaptation method "nope"/);
  await assert.rejects(graft([...args, '--method', 'auto', '--validator', 'acc']), /adapt.validator.*snd.*entropy.*im/s);
  await assert.rejects(graft([...args, '--method', 'mcc', '--ensemble', '2']), /--ensemble \(adapt.ensemble\) applies to --method auto only/);
});

test('a target folder without images is a clear error', async () => {
  await assert.rejects(
    graft(['--source', path.join(tmp, 'src'), '--target', path.join(tmp, 'empty'), ...common]),
    /--target: Folder .*empty contains no images/,
  );
});

test('source and target with different input sizes are a clear error', async () => {
  await assert.rejects(
    graft(['--source', path.join(tmp, 'src'), '--target', 'mnist-style-shift', ...common]),
    /--target mnist-style-shift gives 1x28x28 grayscale images, but the model's preprocessing gives 1x8x8 .*same input size/,
  );
});

test('AdaBN on a model without BatchNorm is a clear error', async () => {
  const file = path.join(tmp, 'nobn.onnx');
  const m = mlp([4], 2).build({ inputShape: ['N', 1, 8, 8].slice(0, 2) as never, seed: 0 });
  saveModel(m, file);
  fs.writeFileSync(path.join(tmp, 'nobn.json'), JSON.stringify({ preprocess: { size: [8, 8], channels: 1, resize: 'stretch' } }));
  await assert.rejects(
    graft(['--source', path.join(tmp, 'src'), '--target', path.join(tmp, 'tgt'), ...common, '--model', file, '--method', 'adabn']),
    /no BatchNormalization layer/,
  );
});

test('an unknown method is a clear error', async () => {
  await assert.rejects(
    graft(['--source', path.join(tmp, 'src'), '--target', path.join(tmp, 'tgt'), ...common, '--method', 'mmd']),
    /unknown adaptation method "mmd"/,
  );
});

/** Runs `graft adapt …` in this process without --quiet; returns what it wrote to stderr. */
async function graftLoud(args: string[]): Promise<string> {
  let err = '';
  const write = process.stderr.write.bind(process.stderr);
  process.stderr.write = ((chunk: string | Uint8Array) => {
    err += String(chunk);
    return true;
  }) as typeof process.stderr.write;
  try {
    await buildProgram().parseAsync(['node', 'graft', 'adapt', ...args]);
  } finally {
    process.stderr.write = write;
  }
  return err;
}

test('a labelled manifest: as --target its labels are ignored (a warning says so), as --target-eval it is evaluated', async () => {
  const lines = ['path,label'];
  for (const k of ['dark', 'light']) for (let i = 0; i < 6; i++) lines.push(`${path.join(tmp, 'tgt-eval', k, `${k}-${i}.png`)},${k}`);
  const manifest = path.join(tmp, 'tgt-eval.csv');
  fs.writeFileSync(manifest, `${lines.join('\n')}\n`);
  const out = path.join(tmp, 'manifest-run');
  const err = await graftLoud(['--source', path.join(tmp, 'src'), '--target', manifest, '--target-eval', manifest, ...common, '--method', 'mcc', '--out', out]);
  assert.match(err, /warning: --target: the manifest .*tgt-eval\.csv has a label column; its labels are ignored/);
  const doc = JSON.parse(fs.readFileSync(path.join(out, 'results.json'), 'utf8'));
  // the manifest lists the 12 images of the tgt-eval class folder: evaluating either gives the same accuracy
  const acc = doc.runs[0].selected.target_acc;
  assert.ok(Number.isInteger(Math.round(acc * 12 * 1e9) / 1e9), `an accuracy over the manifest's 12 images, got ${acc}`);
  const folderRun = path.join(tmp, 'manifest-run-folder-eval');
  await graft([
    '--source',
    path.join(tmp, 'src'),
    '--target',
    manifest,
    '--target-eval',
    path.join(tmp, 'tgt-eval'),
    ...common,
    '--method',
    'mcc',
    '--out',
    folderRun,
  ]);
  assert.equal(acc, JSON.parse(fs.readFileSync(path.join(folderRun, 'results.json'), 'utf8')).runs[0].selected.target_acc);
  // a manifest without labels cannot be evaluated on
  const bare = path.join(tmp, 'bare.csv');
  fs.writeFileSync(bare, `path\n${path.join(tmp, 'tgt-eval', 'dark', 'dark-0.png')}\n`);
  await assert.rejects(
    graft(['--source', path.join(tmp, 'src'), '--target', path.join(tmp, 'tgt'), '--target-eval', bare, ...common]),
    /--target-eval: the manifest .*bare\.csv has no label column/,
  );
});

test('--seeds with one method writes one model per seed', async () => {
  const out = path.join(tmp, 'seeds');
  await graft(['--source', path.join(tmp, 'src'), '--target', path.join(tmp, 'tgt'), ...common, '--method', 'coral', '--seeds', '0,1', '--out', out]);
  for (const f of ['model-seed0.onnx', 'model-seed0.json', 'model-seed1.onnx', 'model-seed1.json']) assert.ok(fs.existsSync(path.join(out, f)), f);
  assert.ok(!fs.existsSync(path.join(out, 'model.onnx')));
  const w = (f: string) => loadModel(path.join(out, f)).graph.initializers.get('head.weight')!.data;
  assert.notDeepEqual(w('model-seed0.onnx'), w('model-seed1.onnx'), 'each seed its own model');
  assert.deepEqual(JSON.parse(fs.readFileSync(path.join(out, 'results.json'), 'utf8')).models, ['model-seed0.onnx', 'model-seed1.onnx']);
  assert.equal(JSON.parse(fs.readFileSync(path.join(out, 'model-seed1.json'), 'utf8')).adapt.seed, 1);
});

test('--image-size/--channels that cannot apply are an error, not silently ignored', async () => {
  await assert.rejects(
    graft(['--source', 'mnist', '--target', 'mnist-style-shift', '--image-size', '32']),
    /--image-size 32 does not apply: the input is fixed by --source mnist \(28×28 grayscale\)/,
  );
  await assert.rejects(graft(['--source', 'mnist', '--target', 'mnist-style-shift', '--channels', '3']), /--channels 3 does not apply/);
  const file = path.join(tmp, 'eight.onnx');
  saveModel(mlp([4], 2).build({ inputShape: ['N', 64] as never, seed: 0 }), file);
  fs.writeFileSync(path.join(tmp, 'eight.json'), JSON.stringify({ preprocess: { size: [8, 8], channels: 1, resize: 'stretch' } }));
  await assert.rejects(
    graft(['--source', path.join(tmp, 'src'), '--target', path.join(tmp, 'tgt'), '--model', file, '--image-size', '16']),
    /--image-size 16 does not apply: the input is fixed by the preprocessing of --model/,
  );
  await assert.rejects(
    graft(['--source', path.join(tmp, 'src'), '--target', path.join(tmp, 'tgt'), '--model', file, '--width', '8']),
    /--width sets the width of the SmallCNN built without --model; remove it/,
  );
  await assert.rejects(graft(['--source', 'mnist', '--target', 'mnist-style-shift', '--resume']), /--resume needs --out <dir>/);
});

test("graft adapt's default SmallCNN is --arch small-cnn's (width DEFAULT_ARCH_WIDTH); --width changes it", async () => {
  const conv = (dir: string) => loadModel(path.join(dir, 'model.onnx')).graph.initializers.get('backbone.0.weight')!.dims;
  const a = path.join(tmp, 'width-default');
  await graft(['--source', path.join(tmp, 'src'), '--target', path.join(tmp, 'tgt'), ...common, '--method', 'source-only', '--out', a]);
  assert.equal(conv(a)[0], DEFAULT_ARCH_WIDTH);
  assert.equal(DEFAULT_ARCH_WIDTH, 16);
  const b = path.join(tmp, 'width-4');
  await graft(['--source', path.join(tmp, 'src'), '--target', path.join(tmp, 'tgt'), ...common, '--method', 'source-only', '--width', '4', '--out', b]);
  assert.equal(conv(b)[0], 4);
});

test('progress shows the classification and adaptation losses apart, and each checkpoint is reported as it is scored', async () => {
  const r = await runGraft(['adapt', '--source', path.join(tmp, 'src'), '--target', path.join(tmp, 'tgt'), ...common, '--epochs', '3', '--method', 'mcc'], tmp);
  assert.equal(r.code, 0, r.stderr);
  const lines = r.stderr.split('\n');
  const progress = lines.filter((l) => l.startsWith('{"event":"progress"')).map((l) => JSON.parse(l));
  assert.ok(progress.length > 0 && progress.every((p) => typeof p.cls_loss === 'number' && typeof p.adapt_loss === 'number'), r.stderr);
  for (const p of progress) assert.ok(Math.abs(p.loss - (p.cls_loss + p.adapt_loss)) < 1e-3, JSON.stringify(p));
  const scored = lines.map((l, i) => [l, i] as const).filter(([l]) => /\[seed 0\] mcc: checkpoint at step \d+ \(epoch \d\): IM \S+, SND/.test(l));
  assert.equal(scored.length, 3, 'one line per epoch');
  const final = lines.findIndex((l) => l.includes('"final":true'));
  assert.ok(scored[0]![1] < final, 'the first checkpoint is reported before training ends');
});

test('graft adapt --out killed with SIGKILL and --resume equals an uninterrupted run; the run folder guards its flags', async () => {
  const args = (out: string) => [
    '-q',
    'adapt',
    '--source',
    path.join(tmp, 'src'),
    '--target',
    path.join(tmp, 'tgt'),
    ...common,
    '--epochs',
    '40',
    '--method',
    'dann',
    '--checkpoint-every',
    '5',
    '--eval-every',
    '6',
    '--out',
    out,
  ];
  const env = { ...process.env, GRAFT_FROM_SOURCE: '1', GRAFT_DEBUG: '', NODE_OPTIONS: '' };
  const full = path.join(tmp, 'kill-full');
  const a = spawnSync(process.execPath, [GRAFT_BIN, ...args(full)], { env, encoding: 'utf8', timeout: 120_000 });
  assert.equal(a.status, 0, a.stderr);
  const killedDir = path.join(tmp, 'kill-run');
  const ck = path.join(killedDir, 'checkpoints', 'dann-seed0', 'last.ckpt');
  const child = spawn(process.execPath, [GRAFT_BIN, ...args(killedDir)], { env, stdio: 'ignore' });
  const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
  let killed = false;
  const t0 = Date.now();
  while (Date.now() - t0 < 120_000 && child.exitCode === null) {
    if (fs.existsSync(ck)) {
      killed = child.kill('SIGKILL');
      break;
    }
    await new Promise((r) => setTimeout(r, 5));
  }
  await exited;
  assert.ok(killed && !fs.existsSync(path.join(killedDir, 'model.onnx')), 'killed before the end');
  // a new run into the same folder is refused; resuming with other flags too
  const again = spawnSync(process.execPath, [GRAFT_BIN, ...args(killedDir)], { env, encoding: 'utf8', timeout: 120_000 });
  assert.match(again.stderr, /--out .*kill-run already holds a graft adapt run\. Continue it with --resume, replace it with --overwrite/);
  const other = spawnSync(process.execPath, [GRAFT_BIN, ...args(killedDir), '--resume', '--lr', '0.02'], { env, encoding: 'utf8', timeout: 120_000 });
  assert.match(other.stderr, /Cannot resume .*kill-run: it was run with other --lr\./);
  const b = spawnSync(process.execPath, [GRAFT_BIN, ...args(killedDir), '--resume'], { env, encoding: 'utf8', timeout: 120_000 });
  assert.equal(b.status, 0, b.stderr);
  assert.ok(fs.readFileSync(path.join(killedDir, 'model.onnx')).equals(fs.readFileSync(path.join(full, 'model.onnx'))), 'model.onnx byte-identical');
  const runs = (d: string) => JSON.parse(fs.readFileSync(path.join(d, 'results.json'), 'utf8')).runs.map(({ seconds: _s, ...r }: Record<string, unknown>) => r);
  assert.deepEqual(runs(killedDir), runs(full));
});

test('graft adapt --config gives exactly the results and model of the same flags; flags override the file', async () => {
  const flagsRun = path.join(tmp, 'cfg-flags');
  const tgt = path.join(tmp, 'tgt');
  const tgtEval = path.join(tmp, 'tgt-eval');
  await graft(['--source', path.join(tmp, 'src'), '--target', tgt, '--target-eval', tgtEval, ...common, '--method', 'dann', '--seed', '3', '--out', flagsRun]);
  // the same run from a config file (paths relative to the file), with a learning rate that --lr overrides
  const file = path.join(tmp, 'adapt.yaml');
  fs.writeFileSync(
    file,
    [
      'data: { train: src, valSplit: 0.25 }',
      'model: { preprocess: { size: 8, channels: 1 } }',
      'train: { epochs: 1, batchSize: 4, optimizer: { lr: 0.5 } }',
      'run: { seed: 3 }',
      'adapt: { target: tgt, targetEval: tgt-eval, method: dann, out: cfg-file }',
      '',
    ].join('\n'),
  );
  await graft(['--config', file, '--lr', '0.01']);
  const fileRun = path.join(tmp, 'cfg-file');
  const runs = (d: string) => JSON.parse(fs.readFileSync(path.join(d, 'results.json'), 'utf8')).runs.map(({ seconds: _s, ...r }: Record<string, unknown>) => r);
  assert.deepEqual(runs(fileRun), runs(flagsRun));
  assert.equal(runs(fileRun)[0].seed, 3);
  assert.ok(fs.readFileSync(path.join(fileRun, 'model.onnx')).equals(fs.readFileSync(path.join(flagsRun, 'model.onnx'))), 'model.onnx byte-identical');
});

test('graft adapt --config: an unknown adapt key gets "did you mean", a key graft adapt does not read is an error', async () => {
  const file = path.join(tmp, 'typo.yaml');
  fs.writeFileSync(file, 'data: { train: src }\nadapt: { target: tgt, metod: dann }\n');
  await assert.rejects(graft(['--config', file]), /adapt\.metod: unknown key \(did you mean "method"\?\); valid keys under adapt: target, targetEval, method/);
  const foreign = path.join(tmp, 'foreign.yaml');
  fs.writeFileSync(foreign, 'data: { train: src, test: tgt-eval }\ntrain: { labelSmoothing: 0.1 }\nadapt: { target: tgt }\n');
  await assert.rejects(
    graft(['--config', foreign]),
    /data\.test, train\.labelSmoothing in .*foreign\.yaml do not apply to graft adapt .*Remove it, or give graft adapt its own file with --config/,
  );
  await assert.rejects(graft(['--source', path.join(tmp, 'src')]), /graft adapt needs the unlabelled target: --target <data> \(adapt\.target in the config\)/);
});
