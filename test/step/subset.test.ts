import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ArraySource, type BatchSource, subsetSource } from '../../src/step/batches.js';

test('subsetSource: a source with its own subset() keeps it; a view maps indices and keeps dtype and per-batch shapes', async () => {
  const arrays = new ArraySource(Float32Array.from([0, 1, 2, 3, 4, 5]), [0, 1, 0, 1, 0, 1], [1], 2);
  assert.ok(subsetSource(arrays, [4, 1]) instanceof ArraySource, "ArraySource's own subset");
  const seen: number[][] = [];
  const tokens: BatchSource = {
    length: 5,
    sampleShape: [3],
    sampleDtype: 'int64',
    numClasses: 2,
    batchSampleShape: (indices) => [Math.max(...Array.from(indices)) + 1],
    fill(indices, x, y) {
      seen.push(Array.from(indices));
      for (let i = 0; i < indices.length; i++) y[i] = BigInt(indices[i]!);
      void x;
    },
  };
  const view = subsetSource(tokens, Int32Array.from([4, 2, 0]));
  assert.equal(view.length, 3);
  assert.equal(view.sampleDtype, 'int64');
  assert.deepEqual(view.batchSampleShape?.([1, 2]), [3], 'shape of the batch of source rows 2 and 0');
  const y = new BigInt64Array(2);
  await view.fill([0, 1], new BigInt64Array(6), y, { epoch: 0, seed: 0 });
  assert.deepEqual(seen.at(-1), [4, 2]);
  assert.deepEqual(Array.from(y), [4n, 2n]);
});
