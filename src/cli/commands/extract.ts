/**
 * `graft extract --data … --backbone … [--queue redis://…]`: a data set's features under a backbone into an output
 * folder and the feature store, here or on `graft worker`s (src/run/extract.ts; byte-identical either way).
 */
import { type Command, Option } from 'commander';
import { emit, globals, note } from '../context.js';
import { addStoreOptions, type StoreFlags } from '../store.js';
import { atLeastOne, warner } from './predict.js';

interface ExtractFlags extends StoreFlags {
  data: string;
  backbone: string;
  cut?: string;
  out: string;
  queue?: string;
  shardSize: number;
  batchSize: number;
  cacheDir?: string;
}

/** Registers `graft extract`. */
export function register(program: Command): void {
  const cmd = program
    .command('extract')
    .description("compute a backbone's features of a data set into the feature store and an output folder, here or on graft workers (--queue)")
    .requiredOption('-d, --data <path>', 'labelled images: a folder of <class>/<images> or a CSV/JSONL manifest (path,label)')
    .requiredOption('--backbone <model>', 'a model file, registry name or run folder')
    .option('--cut <value>', "the feature value (default: the model's recorded cut, else the input of its classifier)")
    .option('-o, --out <dir>', 'where features.f32 and index.json go', 'features')
    .option(
      '--queue <url>',
      'compute on `graft worker`s through this Redis server (redis://host:port); the store (--store, else the cache folder) must be shared',
    )
    .addOption(new Option('--shard-size <n>', 'files per worker job (with --queue)').default(256).argParser(atLeastOne('--shard-size')))
    .addOption(new Option('-b, --batch-size <n>', 'images per inference batch').default(32).argParser(atLeastOne('--batch-size')))
    .option(
      '--cache-dir <dir>',
      'root of the feature store (default: GRAFT_CACHE_DIR, else ./.graft-cache); with --queue, a folder every worker sees at the same path; with an s3:// --store, where its local mirror goes',
    );
  addStoreOptions(cmd).action(async (opts: ExtractFlags, cmd: Command) => {
    const { extractRun } = await import('../../run/extract.js');
    const { taskProgressBars } = await import('../../util/progress.js');
    const r = await extractRun({
      ...opts,
      threads: globals(cmd).threads,
      onNote: (m) => note(cmd, m),
      onWarning: warner(cmd),
      onTaskProgress: globals(cmd).quiet ? undefined : taskProgressBars(),
    });
    emit(cmd, r, () => [`wrote ${r.rows} rows of ${r.dims} features to ${r.out}${r.failed.length ? ` (${r.failed.length} files skipped)` : ''}`]);
  });
}
