import assert from 'node:assert/strict';
import { test } from 'node:test';
import { register as globalRegistry } from 'prom-client';
import { createServeMetrics } from '../../src/server/metrics.js';

/** The value of one sample line `name{labels} value` in the exposition text; undefined when absent. */
function sample(body: string, name: string, labels: Record<string, string>): number | undefined {
  const want = Object.entries(labels)
    .map(([k, v]) => `${k}="${v}"`)
    .sort();
  for (const line of body.split('\n')) {
    const m = /^([a-z_]+)\{([^}]*)\} (\S+)$/.exec(line);
    if (!m || m[1] !== name) continue;
    const got = m[2]!.split(',').sort();
    if (got.length === want.length && got.every((g, i) => g === want[i])) return Number(m[3]);
  }
  return undefined;
}

test('the exposition text counts requests, rows and executions per model and version', async () => {
  const metrics = createServeMetrics();
  metrics.request('cats', '1', true, 0.003);
  metrics.request('cats', '1', true, 0.02);
  metrics.request('cats', '1', false, 0.001);
  metrics.request('dogs', '2', true, 0.5);
  // one batch of 5 rows from 3 requests, then one of 1 row
  metrics.execution('cats', '1', 5, 3, [0.001, 0.002, 0.0005], 0.004);
  metrics.execution('cats', '1', 1, 1, [0], 0.002);
  const { contentType, body } = await metrics.render();
  assert.match(contentType, /^text\/plain/);
  const cats = { model: 'cats', version: '1' };
  const dogs = { model: 'dogs', version: '2' };
  assert.equal(sample(body, 'graft_inference_request_success', cats), 2);
  assert.equal(sample(body, 'graft_inference_request_failure', cats), 1);
  assert.equal(sample(body, 'graft_inference_request_success', dogs), 1);
  assert.equal(sample(body, 'graft_inference_count', cats), 6);
  assert.equal(sample(body, 'graft_inference_exec_count', cats), 2);
  // average batch size, as a dashboard computes it
  assert.equal(sample(body, 'graft_inference_count', cats)! / sample(body, 'graft_inference_exec_count', cats)!, 3);
  assert.equal(sample(body, 'graft_inference_request_duration_seconds_count', cats), 3);
  assert.ok(Math.abs(sample(body, 'graft_inference_request_duration_seconds_sum', cats)! - 0.024) < 1e-12);
  assert.equal(sample(body, 'graft_inference_request_duration_seconds_bucket', { ...cats, le: '0.005' }), 2);
  assert.equal(sample(body, 'graft_inference_queue_duration_seconds_count', cats), 4);
  assert.ok(Math.abs(sample(body, 'graft_inference_queue_duration_seconds_sum', cats)! - 0.0035) < 1e-12);
  assert.equal(sample(body, 'graft_inference_compute_duration_seconds_count', cats), 2);
  assert.ok(Math.abs(sample(body, 'graft_inference_compute_duration_seconds_sum', cats)! - 0.006) < 1e-12);
  assert.equal(sample(body, 'graft_inference_batch_size_bucket', { ...cats, le: '4' }), 1);
  assert.equal(sample(body, 'graft_inference_batch_size_bucket', { ...cats, le: '8' }), 2);
  assert.equal(sample(body, 'graft_inference_exec_count', dogs), undefined);
  assert.match(body, /# TYPE graft_inference_request_success counter/);
  assert.match(body, /# TYPE graft_inference_compute_duration_seconds histogram/);
});

test('each server has its own registry: two instances do not share counts or touch the global one', async () => {
  const a = createServeMetrics();
  const b = createServeMetrics();
  a.request('m', '1', true, 0.01);
  assert.equal(sample((await a.render()).body, 'graft_inference_request_success', { model: 'm', version: '1' }), 1);
  assert.equal(sample((await b.render()).body, 'graft_inference_request_success', { model: 'm', version: '1' }), undefined);
  assert.doesNotMatch(await globalRegistry.metrics(), /graft_inference/);
});

test('execution refuses queue times that do not match its request count', () => {
  const metrics = createServeMetrics();
  assert.throws(() => metrics.execution('m', '1', 2, 2, [0.1], 0.01), /1 queue times for 2 requests of model "m"/);
});

test('process metrics are opt-in and carry the graft_ prefix', async () => {
  const plain = createServeMetrics();
  assert.doesNotMatch((await plain.render()).body, /process_cpu/);
  const full = createServeMetrics({ defaultMetrics: true });
  assert.match((await full.render()).body, /graft_process_cpu_seconds_total/);
});
