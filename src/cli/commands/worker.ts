/**
 * `graft worker --queue redis://host:port`: takes feature-extraction shards and tune trials from the queue (src/scale/worker.ts)
 * until SIGINT/SIGTERM, then finishes the running job and exits. `graft queue status` shows the queue.
 */
import type { Command } from 'commander';
import { emit, globals, note, positiveInt } from '../context.js';
import { addStoreOptions, type StoreFlags } from '../store.js';

/** Registers `graft worker` and `graft queue status`. */
export function register(program: Command): void {
  const worker = program
    .command('worker')
    .description('take feature-extraction shards and tune trials from a Redis queue (BullMQ)')
    .requiredOption('--queue <url>', 'the Redis server, redis://host:port')
    .option('--name <name>', "this worker's name in `graft queue status` (default: host and pid)")
    .option('--trials <n>', 'tune trials at once, one process each (default 1)', positiveInt('--trials'));
  addStoreOptions(worker).action(async function (this: Command, flags: { queue: string; name?: string; trials?: number } & StoreFlags) {
    const { startWorker } = await import('../../scale/worker.js');
    const { redisConnection } = await import('../../scale/connection.js');
    redisConnection(flags.queue); // a bad URL is one clear error before anything starts
    const w = await startWorker({
      queue: flags.queue,
      name: flags.name,
      threads: globals(this).threads,
      trialConcurrency: flags.trials,
      store: flags.store,
      s3Endpoint: flags.s3Endpoint,
      onWarning: (m) => note(this, m),
      onJob: (e) =>
        note(this, e.ok ? `${e.name} ${e.id} done${e.files ? ` (${e.files} file${e.files === 1 ? '' : 's'})` : ''}` : `${e.name} ${e.id} failed: ${e.error}`),
    });
    note(this, `graft worker: waiting for jobs on ${flags.queue} (Ctrl-C finishes the running job and stops)`);
    await new Promise<void>((resolve) => {
      const stop = () => {
        note(this, 'graft worker: finishing the running job, then stopping (Ctrl-C again to abandon it; the queue retries it)');
        process.once('SIGINT', () => process.exit(130));
        void w.close().then(resolve);
      };
      process.once('SIGINT', stop);
      process.once('SIGTERM', stop);
    });
  });

  const queue = program.command('queue').description("look at graft's job queue");
  queue
    .command('status')
    .description('jobs waiting, active, failed and retried, and the workers connected')
    .requiredOption('--queue <url>', 'the Redis server, redis://host:port')
    .action(async function (this: Command, flags: { queue: string }) {
      const { queueStatus } = await import('../../scale/status.js');
      const queues = [await queueStatus(flags.queue, 'extract'), await queueStatus(flags.queue, 'tune')];
      const lines = (s: (typeof queues)[number]) => [
        `queue ${s.queue} on ${flags.queue}`,
        `  waiting ${s.waiting}  active ${s.active}  delayed ${s.delayed}${s.queue === 'extract' ? `  waiting for shards ${s.waitingChildren}` : ''}`,
        `  completed ${s.completed}  failed ${s.failed}  retried ${s.retried}`,
        `  workers alive: ${s.workers.length ? s.workers.join(', ') : 'none'}`,
      ];
      // the extraction queue's counts stay at the top level of --json (as before the tune queue); the tune queue's under "tune"
      emit(this, { ...queues[0]!, tune: queues[1]! }, () => queues.flatMap(lines));
    });
}
