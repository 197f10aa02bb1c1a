/** Every run's live state, from the server's event stream (server-sent events of run/queue.ts's messages). */
import type { QueueMessage, QueueState } from '../../run/queue.js';
import type { TaskProgress } from '../../util/progress.js';
import { url } from './api.js';
import { status } from './dom.js';

/** What the page knows of a run from its events. */
export interface LiveRun {
  name: string;
  state: QueueState;
  history: Record<string, number | string>[];
  step?: { phase: string; epoch: number; epochs: number; batch: number; batches: number; loss: number };
  eta?: number;
  /** The latest long task's progress (fetching a backbone, validating images, extracting features). */
  task?: TaskProgress;
  /** Seconds left in that task at its pace so far (once it has moved). */
  taskEta?: number;
  notes: string[];
  error?: string;
}

/** Runs by name. */
export const live = new Map<string, LiveRun>();
const listeners = new Set<(run: LiveRun) => void>();

/** Calls `fn` on every change of a run; returns the function that stops it. */
export function onLive(fn: (run: LiveRun) => void): () => void {
  listeners.add(fn);
  return () => listeners.delete(fn);
}

function apply(m: QueueMessage): void {
  let r = live.get(m.run);
  if ('state' in m && m.state === 'queued') {
    r = { name: m.run, state: 'queued', history: [], notes: [] }; // a new (or resumed) run starts over
    live.set(m.run, r);
  }
  if (!r) live.set(m.run, (r = { name: m.run, state: 'running', history: [], notes: [] }));
  if ('state' in m) {
    r.state = m.state;
    if (m.error) r.error = m.error;
  } else {
    const e = m.event;
    if (e.type === 'step') {
      r.step = e;
      r.eta = m.eta;
    } else if (e.type === 'progress') {
      r.task = { task: e.task, done: e.done, total: e.total, unit: e.unit };
      r.taskEta = m.eta;
    } else if (e.type === 'epoch') r.history.push({ phase: e.phase, ...e.metrics });
    else if (e.type === 'note' || e.type === 'warning') r.notes.push(`${e.type === 'warning' ? '⚠ ' : ''}${e.message}`);
    else if (e.type === 'failed') r.error = e.error;
  }
  for (const l of listeners) l(r);
}

/** Opens the event stream (the browser reconnects it by itself). */
export function startEvents(): void {
  const es = new EventSource(url('/api/events'));
  es.onopen = () => live.clear(); // a (re)connection replays every run
  es.onmessage = (ev) => apply(JSON.parse(ev.data) as QueueMessage);
  es.onerror = () => {
    if (es.readyState === EventSource.CLOSED) status('Lost the graft ui server: start graft ui again and open the URL it prints.', true);
  };
}
