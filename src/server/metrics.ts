/**
 * The Prometheus metrics of `graft serve`: Triton's inference metrics under a `graft_` prefix, in a registry of
 * their own (never prom-client's global one, so two servers in one process, or a library user's own metrics, do
 * not collide). Every series carries the labels `model` and `version`.
 *
 * | metric | type | what |
 * |---|---|---|
 * | `graft_inference_request_success` | counter | requests answered with a result |
 * | `graft_inference_request_failure` | counter | requests answered with an error (bad input, queue full, runtime) |
 * | `graft_inference_count` | counter | rows inferred (a request of batch 4 counts 4) |
 * | `graft_inference_exec_count` | counter | session runs; `count / exec_count` is the average batch size |
 * | `graft_inference_request_duration_seconds` | histogram | a request from arrival to answer, in the HTTP layer |
 * | `graft_inference_queue_duration_seconds` | histogram | a request's wait in the batcher's queue, one per request |
 * | `graft_inference_compute_duration_seconds` | histogram | one session run (a whole batch), one per execution |
 * | `graft_inference_batch_size` | histogram | rows per session run |
 *
 * Durations are in seconds (Prometheus's base unit), not Triton's microsecond counters.
 */
import { Counter, collectDefaultMetrics, Histogram, Registry } from 'prom-client';
import type { ServeMetrics } from './contract.js';

const LABELS = ['model', 'version'] as const;

/** Histogram buckets for request, queue and compute times: 100 µs to 10 s. */
export const DURATION_BUCKETS = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];
/** Histogram buckets for rows per session run. */
export const BATCH_BUCKETS = [1, 2, 4, 8, 16, 32, 64, 128, 256];

/**
 * Creates the server's metrics in a fresh registry.
 * @param opts.defaultMetrics also collect prom-client's process metrics (CPU, memory, event-loop lag) into the same
 *   registry, with the `graft_` prefix (default false).
 */
export function createServeMetrics(opts: { defaultMetrics?: boolean } = {}): ServeMetrics & { readonly registry: Registry } {
  const registry = new Registry();
  const counter = (name: string, help: string) => new Counter({ name, help, labelNames: LABELS, registers: [registry] });
  const histogram = (name: string, help: string, buckets: number[]) => new Histogram({ name, help, labelNames: LABELS, buckets, registers: [registry] });
  const success = counter('graft_inference_request_success', 'Inference requests answered with a result.');
  const failure = counter('graft_inference_request_failure', 'Inference requests answered with an error.');
  const count = counter('graft_inference_count', 'Rows inferred (a request with batch N counts N).');
  const execCount = counter('graft_inference_exec_count', 'Model executions (session runs); count / exec_count is the average batch size.');
  const requestDuration = histogram('graft_inference_request_duration_seconds', 'Time from a request arriving to its answer, in seconds.', DURATION_BUCKETS);
  const queueDuration = histogram(
    'graft_inference_queue_duration_seconds',
    "Time a request waited in the batcher's queue before its batch ran, in seconds.",
    DURATION_BUCKETS,
  );
  const computeDuration = histogram('graft_inference_compute_duration_seconds', 'Time of one model execution (a whole batch), in seconds.', DURATION_BUCKETS);
  const batchSize = histogram('graft_inference_batch_size', 'Rows per model execution.', BATCH_BUCKETS);
  if (opts.defaultMetrics) collectDefaultMetrics({ register: registry, prefix: 'graft_' });
  return {
    registry,
    request(model, version, ok, seconds) {
      const labels = { model, version };
      (ok ? success : failure).inc(labels);
      requestDuration.observe(labels, seconds);
    },
    execution(model, version, rows, requests, queueSeconds, computeSeconds) {
      if (queueSeconds.length !== requests)
        throw new Error(`ServeMetrics.execution: ${queueSeconds.length} queue times for ${requests} requests of model "${model}"; pass one per request.`);
      const labels = { model, version };
      count.inc(labels, rows);
      execCount.inc(labels);
      batchSize.observe(labels, rows);
      computeDuration.observe(labels, computeSeconds);
      for (const q of queueSeconds) queueDuration.observe(labels, q);
    },
    async render() {
      return { contentType: registry.contentType, body: await registry.metrics() };
    },
  };
}
