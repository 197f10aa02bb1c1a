/**
 * `graft serve` as a library (`import { startServer, resolveSources } from 'graft/server'`): the same server the
 * CLI starts, with the batched runner by default and the direct one as an option.
 */
export {
  type ModelRunner,
  type OpenRunner,
  QueueFullError,
  type RunnerOptions,
  type ServeMetrics,
} from './contract.js';
export { openDirectRunner } from './direct-runner.js';
export { createServeMetrics } from './metrics.js';
export { type ModelSource, resolveSources } from './repository.js';
export { type RunningServer, type ServerOptions, startServer } from './serve.js';
export { openBatchedRunner } from './worker-runner.js';
