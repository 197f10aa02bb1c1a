/** The Train tab: the form (data, backbone, recipe, epochs), the queue of runs with cancel/resume, and live curves. */
import { curvesSpec } from '../../report/curves.js';
import type { UiInfo as Info, ListedRun } from '../api-types.js';
import { api, post } from './api.js';
import { dataFolder } from './data.js';
import { chart, fill, h, status } from './dom.js';
import { type LiveRun, live, onLive } from './live.js';

let stopLive: (() => void) | undefined;

/** An amount of a task's unit; KiB from 1024 up as MiB. */
const amount = (n: number, unit: string) => (unit === 'KiB' && n >= 1024 ? `${(n / 1024).toFixed(1)} MiB` : `${n} ${unit}`);

export async function renderTrain(main: HTMLElement): Promise<void> {
  stopLive?.();
  const info = await api<Info>('/api/info');
  const field = (label: string, el: HTMLElement) => h('label', {}, label, el);
  const data = h('input', { id: 'train-data', value: dataFolder || info.folders[0]!, size: 50 });
  const backbone = h(
    'select',
    { id: 'backbone' },
    ...info.backbones.map((b) =>
      h('option', { value: b.name, title: b.description }, `${b.name}${b.kind === 'registry' ? (b.cached ? ' (cached)' : ' (fetched on first use)') : ''}`),
    ),
  );
  // the CLI's default recipe: auto (a head search, then the last stages when the time budget allows)
  const mode = h('select', { id: 'mode' }, ...info.modes.map((m) => h('option', { value: m, selected: m === 'auto' }, m)));
  const epochs = h('input', { id: 'epochs', type: 'number', min: 1, value: 5 });
  const budget = h('input', { id: 'budget', type: 'number', min: 1, value: 60 });
  const budgetField = field('Time budget (s)', budget);
  const epochsField = field('Epochs', epochs);
  const showRecipe = () => {
    // auto picks its own epochs within the budget; the other recipes train a set number of epochs
    budgetField.hidden = mode.value !== 'auto';
    epochsField.hidden = mode.value === 'auto';
  };
  mode.addEventListener('change', showRecipe);
  showRecipe();
  const size = h('input', { id: 'image-size', type: 'number', min: 4, placeholder: 'model default' });
  const name = h('input', { id: 'run-name', placeholder: 'run-<date>', pattern: '[\\w.-]+' });
  // the run this page started: the status line follows its state (queued → running → finished/failed/cancelled)
  let announced: string | undefined;
  let announcedState: string | undefined;
  const start = async () => {
    try {
      const r = await post<{ name: string }>('/api/runs', {
        data: data.value,
        backbone: backbone.value,
        mode: mode.value,
        ...(mode.value === 'auto' ? { budget: Number(budget.value) } : { epochs: Number(epochs.value) }),
        imageSize: size.value ? Number(size.value) : undefined,
        name: name.value || undefined,
      });
      announced = r.name;
      announcedState = 'queued';
      status(`${r.name} queued`);
      await drawQueue();
    } catch (e) {
      status((e as Error).message, true);
    }
  };
  const queue = h('table', { id: 'queue' });
  const curves = h('div', { id: 'live-curves' });
  const progress = h('p', { id: 'live-progress' });
  // the latest long task (a registry backbone being fetched, images validated, features extracted) as a bar
  const taskBar = h('progress', { id: 'live-task-bar' });
  const taskText = h('span', { id: 'live-task-text' });
  const task = h('p', { id: 'live-task', hidden: true }, taskBar, ' ', taskText);
  const notes = h('ul', { id: 'live-notes', class: 'notes' });
  main.append(
    h(
      'section',
      { class: 'form' },
      h('h2', {}, 'Train'),
      field('Image folder', data),
      field('Backbone', backbone),
      field('Recipe', mode),
      budgetField,
      epochsField,
      field('Image size', size),
      field('Run name', name),
      h('button', { id: 'start', onclick: start }, 'Start'),
    ),
    h('section', {}, h('h2', {}, 'Runs'), queue),
    h('section', {}, h('h2', {}, 'Live'), progress, task, curves, notes),
  );

  let shown = '';
  let drawnEpochs = -1;
  const drawLive = (r: LiveRun) => {
    if (r.state !== 'running' && shown && r.name !== shown) return;
    shown = r.name;
    const s = r.step;
    progress.textContent =
      `${r.name}: ${r.state}` +
      (s && r.state === 'running'
        ? ` · ${s.phase} epoch ${s.epoch}/${s.epochs}, batch ${s.batch}/${s.batches}, loss ${s.loss.toFixed(4)}${r.eta !== undefined ? ` · ETA ${Math.ceil(r.eta)} s` : ''}`
        : '') +
      (r.error ? ` · ${r.error}` : '');
    const t = r.task;
    task.hidden = !t || r.state !== 'running';
    if (t) {
      taskBar.max = t.total;
      taskBar.value = t.done;
      task.dataset.task = t.task;
      task.dataset.done = String(t.done);
      task.dataset.total = String(t.total);
      const eta = r.taskEta !== undefined && t.done < t.total ? ` · ETA ${Math.ceil(r.taskEta)} s` : '';
      taskText.textContent = `${t.task}: ${amount(t.done, t.unit)} / ${amount(t.total, t.unit)}${eta}`;
    }
    fill(notes, ...r.notes.slice(-6).map((n) => h('li', {}, n)));
    if (r.history.length !== drawnEpochs) {
      drawnEpochs = r.history.length;
      curves.dataset.epochs = String(drawnEpochs);
      void chart(curves, curvesSpec(r.history));
    }
  };
  // rows are kept while their run's state stays the same (only the numbers change), so a button is never
  // replaced under the pointer; the table is redrawn on state changes and epochs, not on every step
  const drawQueue = async () => {
    // graft adapt runs have no curves, look or resume here: the Compare tab shows them
    const runs = (await api<ListedRun[]>('/api/runs')).filter((r) => r.kind !== 'adapt');
    const old = new Map([...queue.querySelectorAll<HTMLTableRowElement>('tr[data-run]')].map((tr) => [tr.dataset.run, tr]));
    const rows = runs.map((r) => {
      const state = live.get(r.name)?.state ?? r.state;
      const acc = r.metrics?.val?.acc;
      const numbers = [String(live.get(r.name)?.history.length || r.epochs), acc !== undefined ? `${(acc * 100).toFixed(1)}%` : '–'];
      const prev = old.get(r.name);
      if (prev?.dataset.state === state) {
        numbers.forEach((t, i) => void (prev.cells[2 + i]!.textContent = t));
        return prev;
      }
      const act =
        state === 'running' || state === 'queued'
          ? h('button', { class: 'cancel', onclick: () => act$(`/api/runs/${r.name}/cancel`) }, 'Cancel')
          : state === 'finished'
            ? h(
                'button',
                { class: 'look', onclick: () => (window as unknown as { graftOpenTab(t: string, a?: string): void }).graftOpenTab('look', r.name) },
                'Look',
              )
            : h('button', { class: 'resume', onclick: () => act$(`/api/runs/${r.name}/resume`) }, 'Resume');
      return h(
        'tr',
        { 'data-run': r.name, 'data-state': state },
        h('td', {}, r.name),
        h('td', { class: 'state' }, state),
        ...numbers.map((t) => h('td', {}, t)),
        h('td', {}, act),
      );
    });
    if (rows.length === old.size && rows.every((row, i) => queue.rows[i + 1] === row)) return; // same rows in the same order
    fill(queue, queue.rows[0] ?? h('tr', {}, h('th', {}, 'run'), h('th', {}, 'state'), h('th', {}, 'epochs'), h('th', {}, 'val acc'), h('th', {})), ...rows);
  };
  const act$ = async (p: string) => {
    try {
      await post(p);
      await drawQueue();
    } catch (e) {
      status((e as Error).message, true);
    }
  };
  let pending = false;
  const seen = new Map<string, string>();
  stopLive = onLive((r) => {
    drawLive(r);
    if (r.name === announced && r.state !== announcedState) {
      // on state changes only: a message another action put there meanwhile stays until the run moves on
      announcedState = r.state;
      status(r.state === 'failed' && r.error ? `${r.name} failed: ${r.error}` : `${r.name} ${r.state}`, r.state === 'failed');
    }
    // the table follows state changes (a run queued, started, finished) and epochs, at most a few times a second
    const key = `${r.state}:${r.history.length}`;
    if (seen.get(r.name) === key) return;
    seen.set(r.name, key);
    if (pending) return;
    pending = true;
    setTimeout(() => {
      pending = false;
      if (document.body.contains(queue)) drawQueue().catch((e: Error) => status(`cannot list the runs: ${e.message}`, true));
    }, 300);
  });
  const running = [...live.values()].find((r) => r.state === 'running');
  if (running) drawLive(running);
  await drawQueue();
}
