/**
 * Runs that queue: a person (a UI, a server) adds several runs and they train one at a time, in order, through
 * `startRun`. Each run keeps its events for late listeners (a page opened mid-run redraws its curves), its state
 * and an ETA of its current phase; a queued run can be dropped and a running one cancelled (after a checkpoint,
 * so it can be added again with `run.resume`).
 */
import path from 'node:path';
import type { GraftConfig } from './config.js';
import { RunCancelled, type RunEvent, type TrainSummary } from './events.js';
import { type RunHandle, runFolder, startRun } from './train.js';

/** Where a queued run stands. */
export type QueueState = 'queued' | 'running' | 'finished' | 'cancelled' | 'failed';

/** One run of the queue. */
export interface QueuedRun {
  /** The run folder's name (unique among the queue's runs). */
  name: string;
  folder: string;
  state: QueueState;
  config: GraftConfig;
  /** Where the config came from, for messages. */
  source: string;
  /** The run's events so far, but only the latest step and progress event. */
  events: RunEvent[];
  /** Seconds left in the current phase at the pace of its steps so far. */
  eta?: number;
  error?: string;
  summary?: TrainSummary;
}

/**
 * What a queue tells its listeners: a run's event (with the ETA after a step: of its phase; after a progress event:
 * of that task, once it has moved), or a change of a run's state.
 */
export type QueueMessage = { run: string; event: RunEvent; eta?: number } | { run: string; state: QueueState; error?: string };

/** Most events a run keeps for late listeners (steps and progress are kept as the latest one only). */
const MAX_EVENTS = 5000;

/** A first-in, first-out queue of training runs, one running at a time. */
export class RunQueue {
  private readonly runs = new Map<string, QueuedRun>();
  private readonly order: string[] = [];
  private readonly listeners = new Set<(m: QueueMessage) => void>();
  private current?: { name: string; handle: RunHandle };
  private pace?: { phase: string; since: number; steps: number };
  /** The current long task's first report (time in ms, amount done), which its ETA is paced from. */
  private taskPace?: { task: string; since: number; done: number };

  constructor(private readonly start: typeof startRun = startRun) {}

  /**
   * Adds a run (a new one, or `run.resume` of a cancelled or killed one) behind the others.
   * @throws when a run of the same folder is queued or running.
   */
  add(config: GraftConfig, source: string): QueuedRun {
    const folder = path.resolve(runFolder(config));
    const name = path.basename(folder);
    const old = this.runs.get(name);
    if (old && (old.state === 'queued' || old.state === 'running'))
      throw new Error(`The run ${name} is already ${old.state}; wait for it to end or cancel it before starting it again.`);
    const run: QueuedRun = { name, folder, state: 'queued', config, source, events: [] };
    this.runs.set(name, run);
    this.order.push(name);
    this.tell({ run: name, state: 'queued' });
    this.next();
    return run;
  }

  /** Drops a queued run, or cancels the running one at its next step. @returns false when no such run is queued or running. */
  cancel(name: string): boolean {
    const run = this.runs.get(name);
    if (run?.state === 'queued') {
      this.order.splice(this.order.indexOf(name), 1);
      this.setState(run, 'cancelled');
      return true;
    }
    if (run?.state === 'running' && this.current?.name === name) {
      this.current.handle.cancel();
      return true;
    }
    return false;
  }

  /** The queue's runs, in the order they were added. */
  list(): QueuedRun[] {
    return [...this.runs.values()];
  }

  /** One run by name. */
  get(name: string): QueuedRun | undefined {
    return this.runs.get(name);
  }

  /** Listens to every run's events and state changes; returns the function that stops listening. */
  on(listener: (m: QueueMessage) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Resolves when no run is queued or running. */
  async idle(): Promise<void> {
    while (this.current) await this.current.handle.done.catch(() => {});
  }

  private tell(m: QueueMessage): void {
    for (const l of this.listeners) l(m);
  }

  private setState(run: QueuedRun, state: QueueState, error?: string): void {
    run.state = state;
    if (error !== undefined) run.error = error;
    this.tell({ run: run.name, state, ...(error !== undefined ? { error } : {}) });
  }

  private next(): void {
    if (this.current) return;
    const name = this.order.shift();
    if (name === undefined) return;
    const run = this.runs.get(name)!;
    const handle = this.start(run.config, { source: run.source });
    this.current = { name, handle };
    this.pace = undefined;
    this.setState(run, 'running');
    handle.on((e) => this.record(run, e));
    handle.done.then(
      (summary) => {
        run.summary = summary;
        this.finish(run, 'finished');
      },
      (e: Error) => (e instanceof RunCancelled ? this.finish(run, 'cancelled') : this.finish(run, 'failed', e.message)),
    );
  }

  private finish(run: QueuedRun, state: QueueState, error?: string): void {
    this.current = undefined;
    run.eta = undefined;
    this.setState(run, state, error);
    this.next();
  }

  private record(run: QueuedRun, e: RunEvent): void {
    const last = run.events.at(-1);
    if ((e.type === 'step' || e.type === 'progress') && last?.type === e.type) run.events[run.events.length - 1] = e;
    else if (run.events.length < MAX_EVENTS) run.events.push(e);
    if (e.type === 'step') {
      const now = Date.now();
      if (!this.pace || this.pace.phase !== e.phase) this.pace = { phase: e.phase, since: now, steps: 0 };
      else this.pace.steps++;
      const left = e.epochs * e.batches - ((e.epoch - 1) * e.batches + e.batch);
      run.eta = this.pace.steps > 0 ? (((now - this.pace.since) / this.pace.steps) * left) / 1000 : undefined;
    }
    let taskEta: number | undefined;
    if (e.type === 'progress') {
      const now = performance.now();
      const p = this.taskPace;
      if (!p || p.task !== e.task || e.done < p.done) this.taskPace = { task: e.task, since: now, done: e.done };
      else if (e.done > p.done && now > p.since) taskEta = (((now - p.since) / (e.done - p.done)) * Math.max(0, e.total - e.done)) / 1000;
    }
    const eta = e.type === 'step' ? run.eta : taskEta;
    this.tell({ run: run.name, event: e, ...(eta !== undefined ? { eta } : {}) });
  }
}
