/** graft.yaml / graft.json: validation errors name the key (and the flag), YAML and JSON agree, flags override. */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { Command } from 'commander';
import { addConfigFlags, FLAGS, flagValues } from '../../src/cli/flags.js';
import { type GraftConfig, getPath, loadConfig, parseConfig } from '../../src/run/config.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'graft-config-'));
after(() => fs.rmSync(tmp, { recursive: true, force: true }));

function write(name: string, text: string): string {
  const f = path.join(tmp, name);
  fs.writeFileSync(f, text);
  return f;
}

const YAML = `
data:
  train: images
  valSplit: 0.2
model:
  backbone: models/resnet18.onnx
  head: { type: mlp, hidden: [256, 256], activation: relu }
train:
  mode: head
  epochs: 5
  optimizer: { name: sgd, lr: 0.01, momentum: 0.9 }
  augment: true
run:
  name: demo
  seed: 3
`;

/** Parses `argv` (after the command name) with the train flags, like the CLI does, and returns the config. */
function withFlags(file: string | undefined, argv: string[]): GraftConfig {
  const root = new Command('graft').exitOverride().option('--seed <n>', 'seed', Number);
  let config: GraftConfig | undefined;
  const sub = root
    .command('train')
    .exitOverride()
    .configureOutput({ writeErr: () => {} });
  addConfigFlags(sub).action((_o: unknown, c: Command) => {
    config = loadConfig({ file, flags: flagValues(c), cwd: tmp }).config;
  });
  root.parse(['node', 'graft', 'train', ...argv]);
  return config!;
}

function errorOf(fn: () => unknown): string {
  try {
    fn();
  } catch (e) {
    return (e as Error).message;
  }
  assert.fail('expected an error');
}

test('YAML and JSON configs give the same validated config, with defaults and paths resolved against the file', () => {
  const y = loadConfig({ file: write('graft.yaml', YAML) }).config;
  const j = loadConfig({
    file: write(
      'graft.json',
      JSON.stringify({
        data: { train: 'images', valSplit: 0.2 },
        model: { backbone: 'models/resnet18.onnx', head: { type: 'mlp', hidden: [256, 256], activation: 'relu' } },
        train: { mode: 'head', epochs: 5, optimizer: { name: 'sgd', lr: 0.01, momentum: 0.9 }, augment: true },
        run: { name: 'demo', seed: 3 },
      }),
    ),
  }).config;
  assert.deepEqual(y, j);
  assert.equal(y.data.train, path.join(tmp, 'images'));
  assert.equal(y.model.backbone, path.join(tmp, 'models', 'resnet18.onnx'));
  assert.equal(y.train.batchSize, 32, 'default');
  assert.equal(y.run.dir, 'runs', 'default run dir: runs/ in the working folder');
  assert.deepEqual(y.train.augment?.hflip, 0.5, 'augment: true is the standard augmentation');
  assert.equal(y.train.earlyStopping.monitor, 'val_loss');
});

test('validation errors name the file, the key path and how to fix it', () => {
  const bad = write('bad.yaml', 'data:\n  train: x\n  valSpilt: 0.2\nmodel:\n  arch: small-cnn\n  width: "four"\ntrain:\n  optimizer: { lr: 0 }\n');
  const m = errorOf(() => loadConfig({ file: bad }));
  assert.match(m, /^Invalid config in .*bad\.yaml:/);
  assert.match(m, /data\.valSpilt: unknown key \(did you mean "valSplit"\?\); valid keys under data: train, manifest, val, valSplit/);
  assert.match(m, /model\.width: Invalid input: expected number, received string/);
  assert.match(m, /train\.optimizer\.lr: Too small: expected number to be >0/);
  assert.match(m, /Fix these keys in .*bad\.yaml or with the matching flags; docs\/config\.md lists every key/);

  assert.match(
    errorOf(() => parseConfig({ data: { train: 'x' }, model: { arch: 'small-cnn' }, train: { optimizer: { lr: -1 } } })),
    /train\.optimizer\.lr: Too small/,
  );
  assert.match(
    errorOf(() => parseConfig({ data: { train: 'x' }, model: { arch: 'vgg' } })),
    /model\.arch: Invalid option: expected one of "small-cnn"\|/,
  );
  assert.match(
    errorOf(() => parseConfig({ data: { train: 'x' }, model: { arch: 'small-cnn' }, extra: 1 })),
    /- extra: unknown key; valid keys: data, model, train, run/,
  );
  assert.match(
    errorOf(() => parseConfig({ model: { arch: 'small-cnn' } })),
    /data\.train: required: an image folder/,
  );
  assert.match(
    errorOf(() => parseConfig({ data: { train: 'x' }, model: { arch: 'small-cnn' }, train: { optimizer: { name: 'adam', momentum: 0.9 } } })),
    /train\.optimizer\.momentum: applies to sgd only/,
  );
  assert.match(
    errorOf(() => loadConfig({ file: write('broken.yaml', 'data: [1\n') })),
    /broken\.yaml is not valid YAML: .*line 2/,
  );
  assert.match(
    errorOf(() => loadConfig({ file: write('broken.json', '{"data": ') })),
    /broken\.json is not valid JSON/,
  );
  assert.match(
    errorOf(() => loadConfig({ file: path.join(tmp, 'missing.yaml') })),
    /Cannot read config file .*missing\.yaml \(ENOENT\)/,
  );
});

test('CLI flags override the config file; a bad flag value is reported with the flag', () => {
  const file = write('over.yaml', YAML);
  const c = withFlags(file, [
    '--epochs',
    '2',
    '--lr',
    '0.05',
    '--no-augment',
    '--hidden',
    '64,32',
    '--val-split',
    '0',
    '--data',
    'other',
    '--no-early-stopping',
    '--freeze-bn-stats',
  ]);
  assert.equal(c.train.epochs, 2);
  assert.equal(c.train.freezeBNStats, true);
  assert.equal(withFlags(file, []).train.freezeBNStats, false, 'BatchNorm trains its statistics by default');
  assert.equal(withFlags(file, ['--recompute', 'off']).train.recompute, 'off');
  assert.equal(withFlags(file, []).train.recompute, undefined, "unset: the step compiler's 'auto'");
  assert.throws(() => withFlags(file, ['--recompute', 'sometimes']), /recompute/);
  assert.equal(c.train.optimizer.lr, 0.05);
  assert.equal(c.train.optimizer.momentum, 0.9, 'not overridden: from the file');
  assert.equal(c.train.augment, undefined);
  assert.deepEqual(c.model.head.hidden, [64, 32]);
  assert.equal(c.data.valSplit, 0);
  assert.equal(c.data.train, path.join(tmp, 'other'), 'flag paths are relative to the working folder');
  assert.equal(c.train.earlyStopping.enabled, false);
  assert.equal(withFlags(file, []).train.epochs, 5, 'without flags the file wins');
  assert.equal(withFlags(file, ['--seed', '9']).run.seed, 9, 'the global --seed sets run.seed');
  const m = errorOf(() => withFlags(file, ['--lr', '-1']));
  assert.match(m, /train\.optimizer\.lr \(from --lr\): Too small: expected number to be >0/);
  assert.throws(() => withFlags(file, ['--epochs', 'many']), /--epochs needs an integer, got "many"/);
});

test('every flag sets a config key that the schema knows', () => {
  const all = parseConfig({ data: { train: 'x' }, model: { arch: 'small-cnn' } });
  for (const f of FLAGS) {
    const [section] = f.key.split('.');
    assert.ok(section && section in all, `${f.flags} → ${f.key}`);
    const parent = f.key.split('.').slice(0, -1).join('.');
    if (parent.split('.').length > 1 && !f.key.startsWith('model.preprocess') && !f.key.startsWith('train.augment'))
      assert.equal(typeof getPath(all, parent), 'object', `${f.key}: ${parent} is a section`);
  }
});

test("the seed's example (frozen ResNet18, mlp 512→256→256→10, SGD 0.01 momentum 0.9, 10 epochs) in docs/config.md is valid", () => {
  const doc = fs.readFileSync(fileURLToPath(new URL('../../docs/config.md', import.meta.url)), 'utf8');
  const yaml = /```yaml\n([\s\S]*?)```/.exec(doc)?.[1];
  assert.ok(yaml, 'docs/config.md starts with a yaml example');
  const c = loadConfig({ file: write('seed.yaml', yaml) }).config;
  assert.equal(c.train.mode, 'head');
  assert.deepEqual(c.model.head.hidden, [256, 256]);
  assert.equal(c.model.head.activation, 'relu');
  assert.deepEqual(c.train.optimizer, { name: 'sgd', lr: 0.01, momentum: 0.9 });
  assert.equal(c.train.epochs, 10);
  assert.match(c.model.backbone ?? '', /resnet18.*\.onnx$/);
});

test('graft train with an invalid config exits 1 with one line naming the file and key', () => {
  const file = write('cli.yaml', 'data: { train: images }\nmodel: { arch: small-cnn }\ntrain: { optimizer: { lr: 0 } }\n');
  const bin = fileURLToPath(new URL('../../bin/graft.js', import.meta.url));
  const r = spawnSync(process.execPath, [bin, 'train', '--config', file], {
    encoding: 'utf8',
    env: { ...process.env, GRAFT_FROM_SOURCE: '1', GRAFT_DEBUG: '', NODE_OPTIONS: '' },
    timeout: 60_000,
  });
  assert.equal(r.status, 1);
  assert.match(r.stderr, /^graft: error: Invalid config in .*cli\.yaml: - train\.optimizer\.lr: Too small: expected number to be >0 .*docs\/config\.md/);
  assert.equal(r.stderr.trimEnd().split('\n').length, 1);
});
