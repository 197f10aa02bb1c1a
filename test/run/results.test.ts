/**
 * run/results.ts and run/runs.ts read what a run wrote: the metrics of its validation predictions, the
 * most-confused pairs, the mistakes by loss, its files; the run list with states; resume and compare.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, test } from 'node:test';
import { runResults } from '../../src/run/results.js';
import { compareRuns, listRuns, resumeConfig } from '../../src/run/runs.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'graft-run-results-'));
after(() => fs.rmSync(tmp, { recursive: true, force: true }));

function writeRun(name: string, o: { epochs: number; finished: boolean; rows?: unknown[] }) {
  const dir = path.join(tmp, name);
  fs.mkdirSync(dir, { recursive: true });
  const config = {
    source: 'test',
    data: { train: path.join(tmp, 'photos') },
    model: { arch: 'small-cnn' },
    train: { epochs: o.epochs },
    run: { dir: tmp, name },
  };
  fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify(config));
  const hist = Array.from({ length: o.epochs }, (_, i) => JSON.stringify({ phase: 'full', epoch: i + 1, train_loss: 1 / (i + 1), val_acc: i / 10 }));
  fs.writeFileSync(path.join(dir, 'metrics.jsonl'), `${hist.join('\n')}\n`);
  if (!o.finished) return dir;
  fs.writeFileSync(path.join(dir, 'model.onnx'), '');
  fs.writeFileSync(path.join(dir, 'model.json'), JSON.stringify({ labels: ['cat', 'dog', 'fox'], metrics: { val: { loss: 0.5, acc: 0.6 } } }));
  fs.writeFileSync(path.join(dir, 'predictions.jsonl'), `${(o.rows ?? []).map((r) => JSON.stringify(r)).join('\n')}\n`);
  return dir;
}

test('runResults: metrics, confused pairs and mistakes by loss from predictions.jsonl', () => {
  const row = (p: string, label: string, probabilities: number[]) => ({ path: p, label, pred: '', probabilities });
  const dir = writeRun('done', {
    epochs: 2,
    finished: true,
    rows: [
      row('a.png', 'cat', [0.8, 0.1, 0.1]),
      row('b.png', 'cat', [0.3, 0.6, 0.1]), // cat → dog, loss −ln 0.3
      row('c.png', 'cat', [0.1, 0.85, 0.05]), // cat → dog, loss −ln 0.1
      row('d.png', 'dog', [0.2, 0.7, 0.1]),
      row('e.png', 'fox', [0.5, 0.2, 0.3]), // fox → cat, loss −ln 0.3
    ],
  });
  const r = runResults(dir);
  assert.equal(r.n, 5);
  assert.equal(r.accuracy, 2 / 5);
  assert.deepEqual(r.confusion, [
    [1, 2, 0],
    [0, 1, 0],
    [1, 0, 0],
  ]);
  assert.deepEqual(r.confusedPairs, [
    { label: 'cat', pred: 'dog', count: 2 },
    { label: 'fox', pred: 'cat', count: 1 },
  ]);
  assert.deepEqual(
    r.mistakes.map((m) => [m.path, m.pred, Number(m.loss.toFixed(4))]),
    [
      ['c.png', 'dog', Number((-Math.log(0.1)).toFixed(4))],
      ['b.png', 'dog', Number((-Math.log(0.3)).toFixed(4))],
      ['e.png', 'cat', Number((-Math.log(0.3)).toFixed(4))],
    ],
  );
  assert.deepEqual(
    r.perClass.map((c) => [c.label, c.support]),
    [
      ['cat', 3],
      ['dog', 1],
      ['fox', 1],
    ],
  );
  // no report.html was written; the web bundle is offered wherever there is a model.onnx
  assert.deepEqual(r.files, { onnx: 'model.onnx', sidecar: 'model.json', web: 'web.zip' });
});

test('listRuns, resumeConfig and compareRuns read run folders', () => {
  const cut = writeRun('cut', { epochs: 3, finished: false });
  fs.mkdirSync(path.join(tmp, 'not-a-run'));
  assert.deepEqual(
    listRuns(tmp)
      .map((r) => [r.name, r.state, r.history.length])
      .sort(),
    [
      ['cut', 'incomplete', 3],
      ['done', 'finished', 2],
    ],
  );
  const { config, source } = resumeConfig(cut);
  assert.equal(config.run.resume, true);
  assert.equal(config.train.epochs, 3);
  assert.equal(source, 'test');
  assert.throws(() => resumeConfig(path.join(tmp, 'not-a-run')), /holds no graft run/);
  assert.throws(() => runResults(cut), /holds no finished run/);
  const c = compareRuns([path.join(tmp, 'done'), cut]);
  assert.deepEqual(c.diff, [{ key: 'train.epochs', values: [2, 3] }], 'run.name differs too but is not a config difference');
  assert.equal(JSON.stringify(c.curves).includes('"run":"cut"'), true);
});
