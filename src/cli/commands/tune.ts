/**
 * `graft tune --config tune.yaml [--resume]`: hyper-parameter search (TPE / random / grid, median / ASHA
 * pruning) with trials in parallel worker processes and a durable, resumable study log.
 * `graft tune show`: the trials, the best configuration and parameter importances.
 * `graft tune best --export out.onnx`: retrains the best configuration and exports the model.
 */
import fs from 'node:fs';
import path from 'node:path';
import type { Command } from 'commander';
import { CliError, emit, globals, note, positiveInt } from '../context.js';
import { commandIo } from '../run-events.js';

interface TuneFlags {
  config?: string;
  resume?: boolean;
  trials?: number;
  workers?: number;
  threadsPerWorker?: number;
  timeout?: number;
  queue?: string;
}

/** The tune config to use: `explicit`, else ./tune.yaml, ./tune.yml or ./tune.json. */
function findTuneConfig(explicit: string | undefined): string {
  if (explicit) return path.resolve(explicit);
  for (const f of ['tune.yaml', 'tune.yml', 'tune.json']) if (fs.existsSync(f)) return path.resolve(f);
  throw new CliError('No tune config: pass --config <tune.yaml> (or put tune.yaml in the current folder). See docs/cli/tune.md for an example.');
}

async function loadWithFlags(c: Command, flags: TuneFlags) {
  const { loadTuneConfig } = await import('../../tune/config.js');
  const cfg = loadTuneConfig(findTuneConfig(flags.config));
  const g = globals(c);
  if (g.seed !== undefined) cfg.study.seed = g.seed;
  if (g.threads !== undefined) cfg.study.threadsPerWorker = g.threads;
  if (flags.trials !== undefined) cfg.study.trials = flags.trials;
  if (flags.workers !== undefined) cfg.study.workers = flags.workers;
  if (flags.threadsPerWorker !== undefined) cfg.study.threadsPerWorker = flags.threadsPerWorker;
  if (flags.timeout !== undefined) cfg.study.timeout = flags.timeout;
  return cfg;
}

/** The subcommand's --config, else one given before it (`graft tune --config B show`). */
function subConfig(c: Command, opts: { config?: string }): string | undefined {
  return opts.config ?? (c.parent?.opts() as TuneFlags | undefined)?.config;
}

/** The study log named by --study (a folder or a study.jsonl) or by the config. */
async function studyPath(c: Command, opts: { study?: string; config?: string }): Promise<string> {
  if (opts.study) {
    const p = path.resolve(opts.study);
    return fs.existsSync(p) && fs.statSync(p).isDirectory() ? path.join(p, 'study.jsonl') : p;
  }
  const { studyFile } = await import('../../tune/config.js');
  return studyFile(await loadWithFlags(c, { ...opts, config: subConfig(c, opts) }));
}

/** Registers `graft tune` and its subcommands `show` and `best`. */
export function register(program: Command): void {
  const tune = program
    .command('tune')
    .description('hyper-parameter search: TPE/random/grid sampling, median/ASHA pruning, parallel trials, resumable study log')
    .option('-c, --config <file>', 'tune.yaml / tune.json (default ./tune.yaml)')
    .option('--resume', 'continue the study (trials that were running when it was killed are re-run)')
    .option('--trials <n>', 'trials in total [study.trials]', positiveInt('--trials'))
    .option('--workers <n>', 'trials in parallel, one process each (0: in this process) [study.workers]', positiveInt('--workers'))
    .option('--threads-per-worker <n>', 'onnxruntime threads per worker [study.threadsPerWorker]', positiveInt('--threads-per-worker'))
    .option('--timeout <s>', 'start no new trial after this many seconds [study.timeout]', positiveInt('--timeout'))
    .option(
      '--queue <url>',
      'run the trials on `graft worker`s of this Redis queue, redis://host:port (this process keeps the study); --workers is then trials at once',
    )
    .addHelpText('after', '\nSubcommands: graft tune show (table, best config, importances), graft tune best --export <out.onnx>. See docs/cli/tune.md.')
    // options after `show`/`best` belong to the subcommand: without this, `tune` took `tune best --config B`'s
    // --config for itself and the subcommand fell back to ./tune.yaml (another study)
    .enablePositionalOptions()
    .action(async (flags: TuneFlags, c: Command) => {
      const cfg = await loadWithFlags(c, flags);
      const io = commandIo(c);
      const { runTune } = await import('../../tune/run.js');
      const { summarize, formatParams, fmt } = await import('../../tune/report.js');
      const { readStudy } = await import('../../tune/storage.js');
      const ac = new AbortController();
      const onSigint = () => {
        if (ac.signal.aborted) process.exit(130);
        note(c, '\ninterrupted: stopping the workers; the running trials will be re-run by graft tune --resume (Ctrl-C again to quit at once)');
        ac.abort();
      };
      process.on('SIGINT', onSigint);
      let r: Awaited<ReturnType<typeof runTune>>;
      try {
        if (flags.queue) {
          const { distributedTune } = await import('../../scale/tune.js');
          r = await distributedTune(cfg, { queue: flags.queue, resume: flags.resume, io, signal: ac.signal });
        } else r = await runTune(cfg, { resume: flags.resume, io, signal: ac.signal });
      } finally {
        process.off('SIGINT', onSigint);
      }
      const sum = summarize(r.file, readStudy(r.file));
      const doc = { ...sum, seconds: r.seconds, stopped: r.stopped, rerun: r.rerun, workers: r.workers, threadsPerWorker: r.threads };
      emit(c, doc, () => {
        const k = sum.counts;
        const lines = [
          `study ${r.file}: ${sum.trials.length} trials (${k.complete} complete, ${k.pruned} pruned, ${k.failed} failed) in ${r.seconds.toFixed(1)} s${r.stopped ? ' (stopped early)' : ''}`,
        ];
        if (sum.best) lines.push(`best: trial ${sum.best.trial}, ${sum.metric} ${fmt(sum.best.value)}: ${formatParams(cfg.space, sum.best.params)}`);
        else lines.push('best: no trial completed');
        lines.push(`more: graft tune show --config ${cfg.file}; export: graft tune best --config ${cfg.file} --export model.onnx`);
        return lines;
      });
      if (ac.signal.aborted) process.exitCode = 130;
    });

  tune
    .command('show')
    .description('the trials of a study, its best configuration and parameter importances')
    .option('-c, --config <file>', 'the tune config (to find the study)')
    .option('--study <path>', 'the study folder or its study.jsonl (instead of --config)')
    .option('--limit <n>', 'show only the last n trials', positiveInt('--limit'))
    .action(async (opts: { config?: string; study?: string; limit?: number }, c: Command) => {
      const file = await studyPath(c, opts);
      const { readStudy, checkCompatible } = await import('../../tune/storage.js');
      const { summarize, formatSummary } = await import('../../tune/report.js');
      const s = readStudy(file);
      const config = subConfig(c, opts);
      if (config && !opts.study) {
        const cfg = await loadWithFlags(c, { config });
        const diff = (await import('../../tune/space.js')).diffSpaces(s.identity.space, cfg.space);
        if (diff.length) checkCompatible(file, s.identity, { ...s.identity, space: cfg.space });
      }
      const sum = summarize(file, s);
      emit(c, sum, () => formatSummary(sum, s.identity.space, { limit: opts.limit }));
    });

  tune
    .command('best')
    .description('retrain the best configuration of a study and export the model')
    .option('-c, --config <file>', 'the tune config (default ./tune.yaml)')
    .requiredOption('--export <out.onnx>', 'where to write the model (and its .json sidecar)')
    .action(async (opts: { config?: string; export: string }, c: Command) => {
      if (!/\.onnx$/i.test(opts.export)) throw new CliError(`--export ${opts.export}: the file name must end in .onnx.`);
      const cfg = await loadWithFlags(c, { config: subConfig(c, opts) });
      if (!cfg.objective.config)
        throw new CliError(
          'graft tune best --export retrains with the built-in objective (objective.config); this study uses objective.module. Take the best parameters from graft tune show and train them with your own code.',
        );
      const { studyFile } = await import('../../tune/config.js');
      const { readStudy, checkCompatible } = await import('../../tune/storage.js');
      const { bestTrial } = await import('../../tune/study.js');
      const { trainForExport } = await import('../../tune/graft-prepare.js');
      const { formatParams, fmt } = await import('../../tune/report.js');
      const file = studyFile(cfg);
      const s = readStudy(file);
      checkCompatible(file, s.identity, { ...s.identity, space: cfg.space, direction: cfg.direction, metric: cfg.study.metric });
      const best = bestTrial([...s.trials.values()], s.identity.direction);
      if (!best) throw new CliError(`The study ${file} has no complete trial yet; run graft tune --resume first.`);
      const io = commandIo(c);
      io.note(`retraining trial ${best.id} (${s.identity.metric} ${fmt(best.value)}): ${formatParams(cfg.space, best.params)}`);
      const { net, metrics } = await trainForExport(cfg, path.dirname(file), best.params, io);
      const tuneInfo = { study: file, trial: best.id, value: best.value, metric: s.identity.metric, params: best.params };
      net.save(opts.export, { tune: tuneInfo, metrics });
      const doc = { export: path.resolve(opts.export), ...tuneInfo, metrics };
      emit(c, doc, () => [
        `trial ${best.id}: ${formatParams(cfg.space, best.params)}`,
        `val  loss ${metrics.val.loss.toFixed(4)} acc ${metrics.val.acc.toFixed(4)} (study: ${s.identity.metric} ${fmt(best.value)})`,
        ...(metrics.test ? [`test loss ${metrics.test.loss.toFixed(4)} acc ${metrics.test.acc.toFixed(4)}`] : []),
        `wrote ${path.resolve(opts.export)} (+ .json sidecar)`,
      ]);
    });
}
