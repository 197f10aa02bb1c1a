/** The one checked run: a missing, unknown or mis-shaped feed is named in graft's words before onnxruntime runs. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { linear, sequential, smallCNN } from '../../src/nn/index.js';
import { sgd } from '../../src/optim/index.js';
import { FeedError, inputSpecs, runChecked } from '../../src/runtime/feeds.js';
import { createSession, ort } from '../../src/runtime/session.js';
import { ArraySource } from '../../src/step/batches.js';
import { compileTrainStep } from '../../src/step/compile.js';
import { compileEvalStep } from '../../src/step/eval-graph.js';
import { EvalRunner, StepRunner } from '../../src/step/runner.js';
import { Tensor } from '../../src/tensor.js';
import { Network } from '../../src/train/network.js';

const cnn = () => smallCNN({ classes: 3, inChannels: 3 }).build({ inputShape: ['N', 3, 28, 28], seed: 0 });

function images(n: number, shape: number[]): ArraySource {
  const x = new Float32Array(n * shape.reduce((a, b) => a * b, 1)).fill(0.5);
  return new ArraySource(x, new Int32Array(n), shape, 3);
}

test('Network.predict on 3×32×32 images for a model that wants 3×28×28: graft names the input and both shapes', async () => {
  const net = new Network(cnn());
  await assert.rejects(net.predict(images(4, [3, 32, 32])), (e: Error) => {
    assert.ok(e instanceof FeedError, e.message);
    assert.match(e.message, /Model input "input" was fed shape \[4, 3, 32, 32\] by Network\.predict, but the model expects \[N, 3, 28, 28\]/);
    assert.match(e.message, /"size", "channels" and "layout" of "preprocess"/, 'says how to fix it');
    assert.doesNotMatch(e.message, /Got invalid dimensions|Non-zero status/, "not onnxruntime's raw text");
    return true;
  });
  // the same images at the model's size go through
  const ok = await net.predict(images(4, [3, 28, 28]));
  assert.equal(ok.classes, 3);
});

test('an evaluation batch of the wrong shape is named (EvalRunner, through the checked run)', async () => {
  const runner = await EvalRunner.create(compileEvalStep(cnn()));
  const y = new Tensor('int64', [2], new BigInt64Array(2));
  await assert.rejects(
    runner.evaluate({ x: Tensor.f32([2, 1, 28, 28]), y }),
    /Model input "input" was fed shape \[2, 1, 28, 28\] by the evaluation, but the model expects \[N, 3, 28, 28\]/,
  );
  await runner.release();
});

test('a missing feed names the missing input and lists the inputs the model expects', async () => {
  const model = sequential(linear(4, 2)).build({ inputShape: ['N', 4], seed: 0 });
  const step = compileTrainStep({ model, trainable: [...model.graph.initializers.keys()], optimizer: sgd({ lr: 0.1 }) });
  const session = await createSession(step.model);
  const param = [...model.graph.initializers.keys()][0]!;
  const feeds = { [step.dataInput]: new ort.Tensor('float32', new Float32Array(8), [2, 4]) };
  await assert.rejects(runChecked(session, feeds, undefined, { what: 'this test' }), (e: Error) => {
    assert.ok(e instanceof FeedError, e.message);
    assert.ok(
      e.message.startsWith(`Model input "${param}" was not fed by this test. The model expects "${step.dataInput}" [N, 4] float32, "${param}" [`),
      e.message,
    );
    assert.ok(e.message.includes(`"${step.targetInput}" [N] int64`), e.message);
    assert.match(e.message, /it was fed "input"/);
    return true;
  });
  await session.release();
});

test('an unknown feed name and a wrong dtype are refused by name', async () => {
  const model = sequential(linear(4, 2)).build({ inputShape: ['N', 4], seed: 0 });
  const session = await createSession(model);
  const x = new ort.Tensor('float32', new Float32Array(8), [2, 4]);
  await assert.rejects(
    runChecked(session, { input: x, extra: x }),
    /graft fed "extra", which the model does not take; its inputs are "input" \[N, 4\] float32/,
  );
  await assert.rejects(
    runChecked(session, { input: new ort.Tensor('float64', new Float64Array(8), [2, 4]) }),
    /Model input "input" was fed float64 data by graft, but the model expects float32/,
  );
  // the right feed runs, any batch size (the symbolic N)
  const r = await runChecked(session, { input: new ort.Tensor('float32', new Float32Array(12), [3, 4]) });
  assert.deepEqual([...Object.values(r)[0]!.dims], [3, 2]);
  assert.equal(inputSpecs(session), inputSpecs(session), 'the input metadata is read once per session');
  await session.release();
});

test('the training step checks its whole feed through the same run: a wrong-shaped target is named', async () => {
  const model = sequential(linear(4, 2)).build({ inputShape: ['N', 4], seed: 0 });
  const step = compileTrainStep({ model, trainable: [...model.graph.initializers.keys()], optimizer: sgd({ lr: 0.1 }) });
  const runner = await StepRunner.create(step);
  const y = new Tensor('int64', [3], new BigInt64Array(3));
  await assert.rejects(
    runner.train({ x: Tensor.f32([2, 4]), y: new Tensor('int64', [2, 1], new BigInt64Array(2)) }, [0.1]),
    /was fed shape \[2, 1\] by the training step, but the model expects \[N\]/,
  );
  // x and y disagree on N: both are valid alone; onnxruntime then fails inside the graph (the check binds names per input only)
  await assert.rejects(runner.train({ x: Tensor.f32([2, 4]), y }, [0.1]));
  await runner.release();
});

test('closing the feature-extraction worker waits for the batch it is running, instead of terminating onnxruntime mid-run', async () => {
  const { InferenceWorker } = await import('../../src/features/runner.js');
  const { encodeModel } = await import('../../src/onnx/io.js');
  const worker = new InferenceWorker(encodeModel(cnn()), { threads: 1, label: 'feature extractor' });
  await worker.ready;
  const running = worker.run(new Float32Array(512 * 3 * 28 * 28), [512, 3, 28, 28]);
  await worker.close();
  const r = await running; // answered, not rejected: close() waited for it
  assert.deepEqual(r.dims, [512, 3]);
  await assert.rejects(worker.run(new Float32Array(3 * 28 * 28), [1, 3, 28, 28]), /closed/);
});

test('the feature-extraction worker checks each batch against its session inputs before posting it', async () => {
  const { InferenceWorker } = await import('../../src/features/runner.js');
  const { encodeModel } = await import('../../src/onnx/io.js');
  const worker = new InferenceWorker(encodeModel(cnn()), { threads: 1, label: 'feature extractor' });
  try {
    await assert.rejects(
      worker.run(new Float32Array(2 * 3 * 32 * 32), [2, 3, 32, 32]),
      /Model input "input" was fed shape \[2, 3, 32, 32\] by the feature extractor worker, but the model expects \[N, 3, 28, 28\]/,
    );
    const r = await worker.run(new Float32Array(2 * 3 * 28 * 28), [2, 3, 28, 28]);
    assert.deepEqual(r.dims, [2, 3]);
  } finally {
    await worker.close();
  }
});
