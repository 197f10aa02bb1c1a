/** A small tune study log written through graft tune's own StudyLog: complete, pruned and failed trials. */
import { parseSpace } from '../../src/tune/space.js';
import { StudyLog } from '../../src/tune/storage.js';

/** Writes `file` (study.jsonl): 6 trials over lr and hidden; trial 3 is pruned after 1 epoch, trial 5 failed. */
export function writeStudy(file: string): void {
  const space = parseSpace({ lr: { type: 'log-uniform', low: 1e-4, high: 1 }, hidden: { type: 'categorical', choices: [32, 64] } });
  const log = StudyLog.open(file, { name: 'heads', space, direction: 'maximize', metric: 'val_acc', objective: 'graft' }, { resume: false });
  const trials = [
    [0.01, 32, 0.61],
    [0.1, 64, 0.72],
    [0.001, 32, 0.55],
    [0.5, 64, 0.3],
    [0.03, 64, 0.81],
    [0.0003, 32, 0],
  ] as const;
  for (const [trial, [lr, hidden, acc]] of trials.entries()) {
    log.append({ type: 'start', trial, attempt: 1, params: { lr, hidden }, t: Date.now() });
    log.append({ type: 'report', trial, attempt: 1, step: 1, value: acc * 0.9 });
    if (trial === 3) log.append({ type: 'end', trial, attempt: 1, state: 'pruned', value: acc * 0.9, seconds: 1 });
    else if (trial === 5) log.append({ type: 'end', trial, attempt: 1, state: 'failed', error: 'out of memory', seconds: 1 });
    else {
      log.append({ type: 'report', trial, attempt: 1, step: 2, value: acc });
      log.append({ type: 'end', trial, attempt: 1, state: 'complete', value: acc, seconds: 2 });
    }
  }
  log.close();
}
