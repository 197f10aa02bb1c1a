/** Search spaces and tune configs: valid spaces parse, each bad one gives one clear error naming the parameter and the fix. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseTuneConfig } from '../../src/tune/config.js';
import { checkGraftSpace, trialConfig } from '../../src/tune/params.js';
import { checkParams, diffSpaces, fromInternal, gridOf, internalBounds, parseSpace, samplePrior, spaceHash, streamRng } from '../../src/tune/space.js';

const good = {
  lr: { type: 'log-uniform', low: 1e-4, high: 1 },
  weightDecay: { type: 'log-uniform', low: 1e-6, high: 1e-2, grid: [1e-5, 1e-3] },
  hidden: { type: 'categorical', choices: [[], [128], [256, 256]] },
  dropout: { type: 'uniform', low: 0, high: 0.5 },
  epochs: { type: 'int', low: 5, high: 50, log: true },
  batchSize: 32,
};

test('a valid space parses, samples stay inside it, and its hash ignores grids', () => {
  const s = parseSpace(good);
  assert.equal(s.batchSize!.type, 'fixed');
  assert.deepEqual(s.epochs, { type: 'int', low: 5, high: 50, step: 1, log: true });
  const rng = streamRng(0, 1);
  for (let i = 0; i < 200; i++) {
    const p = Object.fromEntries(Object.entries(s).map(([k, spec]) => [k, samplePrior(spec, rng)]));
    assert.equal(checkParams(s, p), undefined);
    assert.ok(Number.isInteger(p.epochs));
  }
  // int bounds on the log scale cover [low − ½, high + ½]
  const [lo, hi] = internalBounds(s.epochs as never);
  assert.equal(fromInternal(s.epochs as never, lo), 5);
  assert.equal(fromInternal(s.epochs as never, hi), 50);
  assert.equal(spaceHash(s), spaceHash(parseSpace({ ...good, weightDecay: { type: 'log-uniform', low: 1e-6, high: 1e-2 } })));
  assert.notEqual(spaceHash(s), spaceHash(parseSpace({ ...good, lr: { type: 'log-uniform', low: 1e-3, high: 1 } })));
  assert.deepEqual(diffSpaces(s, parseSpace({ ...good, lr: { type: 'log-uniform', low: 1e-3, high: 1 } })), [
    'lr: log-uniform [0.0001, 1] → log-uniform [0.001, 1]',
  ]);
});

test('each bad space gives one clear error naming the parameter and the fix', () => {
  const cases: [unknown, RegExp][] = [
    [{ lr: { type: 'uniform', low: 1, high: 0.1 } }, /space\.lr: low \(1\) is greater than high \(0\.1\); swap them\./],
    [{ lr: { type: 'log-uniform', low: 0, high: 1 } }, /space\.lr: a log-scaled range must be positive, but low is 0; use low > 0/],
    [{ lr: { type: 'log-uniform', low: -1, high: 1 } }, /space\.lr: a log-scaled range must be positive/],
    [{ n: { type: 'int', low: 0, high: 8, log: true } }, /space\.n: a log-scaled range must be positive.*or log: false/],
    [{ act: { type: 'categorical', choices: [] } }, /space\.act: choices is empty; list at least one value/],
    [{ act: { type: 'categorical', choices: ['relu', 'relu'] } }, /space\.act: choices lists "relu" twice/],
    [{ lr: { type: 'loguniform', low: 1e-4, high: 1 } }, /space\.lr: unknown or missing "type"; use uniform, log-uniform, int or categorical/],
    [{ lr: { type: 'uniform', low: 0 } }, /space\.lr: high: /],
    [{ lr: { type: 'uniform', low: 0, high: 1, grid: [2] } }, /space\.lr: grid values 2 lie outside \[low, high\]/],
    [{ n: { type: 'int', low: 1.5, high: 3 } }, /space\.n: low: must be an integer/],
    [{}, /the search space is empty/],
  ];
  for (const [space, re] of cases) {
    const err = (() => {
      try {
        parseTuneConfig({ space, objective: { module: '/x.ts' } }, 'tune.yaml');
      } catch (e) {
        return (e as Error).message;
      }
      assert.fail(`no error for ${JSON.stringify(space)}`);
    })();
    assert.match(err, re, err);
    assert.match(err, /^Invalid tune config tune\.yaml:/);
    assert.equal(err.split('\n').filter((l) => l.startsWith('  - ')).length, 1, `exactly one error line for ${JSON.stringify(space)}:\n${err}`);
  }
});

test('tune config: defaults, direction from the metric, sampler/pruner shorthands, objective checks', () => {
  const c = parseTuneConfig({ space: good, objective: { module: 'obj.ts' }, sampler: 'random', study: { metric: 'val_loss' } }, 'tune.yaml', '/base');
  assert.equal(c.direction, 'minimize');
  assert.equal(c.sampler.name, 'random');
  assert.equal(c.pruner.name, 'median');
  assert.equal(c.objective.module, '/base/obj.ts');
  assert.equal(c.study.dir, '/base/runs/tune');
  assert.throws(() => parseTuneConfig({ space: good, objective: {} }), /give exactly one of objective\.config .* or objective\.module/);
  assert.throws(() => parseTuneConfig({ space: good, objective: { module: 'x' }, pruner: { name: 'hyperband' } }), /pruner/);
  assert.throws(
    () => parseTuneConfig({ space: good, objective: { module: 'x' }, study: { trails: 3 } }),
    /study: unknown key "trails"; valid keys: name, dir, trials/,
  );
});

test('the grid enumerates every combination; continuous parameters need a grid', () => {
  const g = gridOf(
    parseSpace({
      a: { type: 'int', low: 1, high: 3 },
      b: { type: 'categorical', choices: ['x', 'y'] },
      c: { type: 'uniform', low: 0, high: 1, grid: [0, 0.5] },
    }),
  );
  assert.equal(g.length, 12);
  assert.deepEqual(g[0], { a: 1, b: 'x', c: 0 });
  assert.deepEqual(g[11], { a: 3, b: 'y', c: 0.5 });
  assert.throws(
    () => gridOf(parseSpace({ lr: { type: 'log-uniform', low: 1e-4, high: 1 } })),
    /space\.lr: the grid sampler needs a finite list of values.*add grid: \[v1, v2, \.\.\.\]/,
  );
});

/** A base graft config (never loaded: the space check only validates). */
const baseCfg = { data: { train: 'mnist' }, model: { arch: 'small-cnn' }, train: { mode: 'head', optimizer: { name: 'sgd', momentum: 0.9 } } };

test('the built-in objective checks each value through the config schema and names the parameter; adapt stays reserved', () => {
  assert.doesNotThrow(() => checkGraftSpace(parseSpace({ ...good, adapt: 'none', adaptLambda: { type: 'uniform', low: 0, high: 1 } }), baseCfg));
  assert.throws(
    () => checkGraftSpace(parseSpace({ learningRate: { type: 'uniform', low: 0.1, high: 1 } }), baseCfg),
    /space\.learningRate: not a parameter of graft training; known parameters: lr, weightDecay.*train\.optimizer\.lr/,
  );
  // the schema's own rule and message: model.head.dropout < 1
  assert.throws(
    () => checkGraftSpace(parseSpace({ dropout: { type: 'uniform', low: 0, high: 1 } }), baseCfg),
    /space\.dropout: the value 1 does not fit the graft config: model\.head\.dropout \(from tune parameter dropout = 1\): .*1/,
  );
  assert.throws(
    () => checkGraftSpace(parseSpace({ 'model.head.dropout': { type: 'uniform', low: 0, high: 1 } }), baseCfg),
    /space\.model\.head\.dropout: the value 1 does not fit the graft config: model\.head\.dropout/,
  );
  assert.throws(
    () => checkGraftSpace(parseSpace({ hidden: { type: 'categorical', choices: [[128], [-1]] } }), baseCfg),
    /space\.hidden: the value \[-1\] does not fit the graft config: model\.head\.hidden\.0/,
  );
  assert.throws(
    () => checkGraftSpace(parseSpace({ 'train.optimiser.lr': { type: 'uniform', low: 0.1, high: 1 } }), baseCfg),
    /space\.train\.optimiser\.lr: .*train\.optimiser: unknown key \(did you mean "optimizer"\?\)/,
  );
  assert.throws(
    () => checkGraftSpace(parseSpace({ adapt: { type: 'categorical', choices: ['none', 'dann'] } }), baseCfg),
    /space\.adapt: the value "dann" .*is reserved for domain-adaptation methods/,
  );
  assert.throws(
    () => checkGraftSpace(parseSpace({ schedule: { type: 'categorical', choices: ['cosine', 'step'] } }), baseCfg),
    /space\.schedule: the value "step" .*train\.schedule\.stepSize.*required by the step schedule/,
  );
  assert.throws(
    () => checkGraftSpace(parseSpace({ lr: 0.1, 'train.optimizer.lr': 0.2 }), baseCfg),
    /space\.train\.optimizer\.lr: sets train\.optimizer\.lr, as space\.lr does; keep one of them/,
  );
  const c = trialConfig(baseCfg, { lr: 0.1, hiddenSize: 64, hiddenLayers: 2, unfreeze: 1, 'train.freezeEpochs': 2 });
  assert.equal(c.train.optimizer.lr, 0.1);
  assert.deepEqual(c.model.head.hidden, [64, 64]);
  assert.equal(c.train.mode, 'last-stages');
  assert.equal(c.train.lastStages, 2);
  assert.equal(c.train.freezeEpochs, 2);
  // adam drops sgd's momentum from the base rather than failing the schema's sgd-only rule
  const a = trialConfig(baseCfg, { optimizer: 'adam' });
  assert.equal(a.train.optimizer.name, 'adam');
  assert.equal(a.train.optimizer.momentum, undefined);
  assert.equal(trialConfig(baseCfg, { unfreeze: 'all' }).train.mode, 'full');
  assert.throws(
    () => checkGraftSpace(parseSpace({ unfreeze: 0, 'train.mode': 'fine-tune' }), baseCfg),
    /space\.train\.mode: sets train\.mode, as space\.unfreeze does/,
  );
});
