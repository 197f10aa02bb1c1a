/**
 * How the CLI shows a run: the run layer's events become notes and warnings on stderr (JSON lines under
 * --json) and a progress bar per epoch, with rate, ETA, running loss and LR on a terminal and throttled JSON
 * lines elsewhere (see util/progress.ts).
 */
import type { Command } from 'commander';
import type { RunEvent, RunListener } from '../run/events.js';
import type { SetupIo } from '../run/setup.js';
import { createProgress, type Metrics, type Progress, taskProgressBars } from '../util/progress.js';
import { globals, note } from './context.js';

/** The warning/notice sinks of a command: warnings always go to stderr (as JSON lines under --json). */
export function commandIo(cmd: Command): SetupIo & { note(message: string): void } {
  const json = !!globals(cmd).json;
  return {
    warn: (m) => process.stderr.write(json ? `${JSON.stringify({ event: 'warning', message: m })}\n` : `warning: ${m}\n`),
    note: (m) => note(cmd, m),
  };
}

/** A listener that prints a run's events for a command. */
export function printRunEvents(cmd: Command): RunListener {
  const io = commandIo(cmd);
  let phases = 1;
  let bar: Progress | undefined;
  let lossSum = 0;
  let seen = 0;
  const tasks = taskProgressBars();
  const end = (metrics?: Metrics) => {
    bar?.done(metrics);
    bar = undefined;
  };
  return (e: RunEvent) => {
    switch (e.type) {
      case 'note':
        return io.note(e.message);
      case 'warning':
        return io.warn(e.message);
      case 'start':
        phases = e.phases.length;
        return;
      case 'progress':
        return tasks(e);
      case 'trial':
        return io.note(
          `auto: head trial ${e.trial}/${e.trials}: lr ${e.lr}, weight decay ${e.weightDecay}, ${e.epochsRun} epoch(s) → val_acc ${e.val_acc.toFixed(4)}, val_loss ${e.val_loss.toFixed(4)}${e.best ? ' (best so far)' : ''}`,
        );
      case 'step': {
        if (!bar) {
          bar = createProgress({ total: e.batches, label: `${phases > 1 ? `${e.phase} ` : ''}epoch ${e.epoch}/${e.epochs}`, unit: 'batch' });
          // resumed in the middle of an epoch: the bar starts at the batch the run continues from
          if (e.batch > 1) bar.tick(e.batch - 1);
          lossSum = 0;
          seen = 0;
        }
        lossSum += e.loss;
        seen++;
        return bar.tick(1, { loss: lossSum / seen, lr: e.lr });
      }
      case 'epoch': {
        const shown: Metrics = {};
        for (const [k, v] of Object.entries(e.metrics)) if (k !== 'epoch' && k !== 'step') shown[k] = v;
        return end(shown);
      }
      case 'finished':
      case 'failed':
      case 'cancelled':
        return end();
    }
  };
}
