/**
 * A trial worker process (started by {@link WorkerPool} with child_process.fork). It loads the objective
 * module once, then runs the trials it is sent, one at a time, relaying each intermediate report to the
 * parent and waiting for the parent's prune decision. It exits when the parent disconnects (also when the
 * parent was killed), so no worker outlives its study.
 */
import { errorText, isPruned, loadObjective, type Objective, type ObjectiveSpec } from './objective.js';
import type { TrialJob, TrialOutcome } from './types.js';

/** Messages from the parent. */
export type ToWorker =
  | { type: 'init'; spec: ObjectiveSpec; threads: number }
  | { type: 'run'; job: TrialJob }
  | { type: 'decision'; trial: number; seq: number; prune: boolean };

/** Messages to the parent. */
export type FromWorker =
  | { type: 'report'; trial: number; seq: number; step: number; value: number }
  | { type: 'outcome'; trial: number; outcome: TrialOutcome };

if (process.send) {
  let spec: ObjectiveSpec | undefined;
  let threads = 1;
  let objective: Promise<Objective> | undefined;
  let seq = 0;
  const waiting = new Map<number, (prune: boolean) => void>();
  const send = (m: FromWorker) => process.send!(m);
  process.on('disconnect', () => process.exit(0));
  // Ctrl-C reaches the whole process group: the study decides (it stops the workers and re-runs their trials on resume)
  process.on('SIGINT', () => {});
  // likewise SIGTERM sent to the whole group (systemd, `kill -- -pgid`): a `graft worker` finishes its running trial
  // on SIGTERM, which needs this process; it exits when its parent disconnects or dies
  process.on('SIGTERM', () => {});
  process.on('message', (m: ToWorker) => {
    if (m.type === 'init') {
      spec = m.spec;
      threads = m.threads;
    } else if (m.type === 'decision') {
      waiting.get(m.seq)?.(m.prune);
      waiting.delete(m.seq);
    } else if (m.type === 'run') void runJob(m.job);
  });

  async function runJob(job: TrialJob): Promise<void> {
    let last: { step: number; value: number } | undefined;
    let outcome: TrialOutcome;
    try {
      if (!spec) throw new Error('the worker received a trial before its objective; this is a bug in graft tune.');
      objective ??= loadObjective(spec);
      const f = await objective;
      const value = await f(job.params, {
        trial: job.id,
        attempt: job.attempt,
        threads,
        report: (step, value) => {
          last = { step, value };
          const s = ++seq;
          return new Promise<boolean>((resolve) => {
            waiting.set(s, resolve);
            send({ type: 'report', trial: job.id, seq: s, step, value });
          });
        },
      });
      outcome =
        typeof value === 'number' && Number.isFinite(value)
          ? { state: 'complete', value }
          : { state: 'failed', error: `the objective returned ${String(value)} instead of a finite number` };
    } catch (e) {
      if (isPruned(e)) outcome = { state: 'pruned', value: (e as { value?: number }).value ?? last?.value, step: (e as { step?: number }).step ?? last?.step };
      else outcome = { state: 'failed', error: errorText(e) };
    }
    send({ type: 'outcome', trial: job.id, outcome });
  }
}
