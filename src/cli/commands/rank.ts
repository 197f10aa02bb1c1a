/**
 * `graft rank --backbones a b c --data <folder|manifest|mnist>`: scores candidate backbones on a
 * class-stratified subsample without fine-tuning (LogME, SFDA, kNN and linear-probe accuracy; see
 * src/choose/), prints the ranking table and writes rank.json and rank.svg/png under --out.
 */
import { type Command, Option } from 'commander';
import { emit, globals, note } from '../context.js';
import { atLeastOne, warner } from './predict.js';

interface RankCliOptions {
  backbones: string[];
  data: string;
  limit: number;
  k: number;
  cut?: string;
  probeEpochs?: number;
  batchSize: number;
  out: string;
}

/** Registers `graft rank`. */
export function register(program: Command): void {
  program
    .command('rank')
    .description('rank candidate backbones for your data without fine-tuning: LogME, SFDA, kNN and linear-probe accuracy on cached features')
    .requiredOption(
      '--backbones <models...>',
      'candidate backbones: .onnx files, registry names (nsfwjs:MobileNetV2, see graft models) or arch:<small-cnn|lenet5|resnet18> (random init, a control)',
    )
    .requiredOption('-d, --data <path>', "labelled data: a folder of <class>/<images>, a CSV/JSONL manifest (path,label) or 'mnist'")
    .addOption(new Option('--limit <n>', 'score at most n images, a class-stratified subsample').default(2000).argParser(atLeastOne('--limit')))
    .addOption(new Option('-k, --k <n>', 'neighbours of the kNN baseline').default(5).argParser(atLeastOne('--k')))
    .option('--cut <value>', "feature value for every backbone (default: each model's recorded cut, else the input of its classifier)")
    .addOption(new Option('--probe-epochs <n>', 'epochs of the linear probe (default 30)').argParser(atLeastOne('--probe-epochs')))
    .addOption(new Option('-b, --batch-size <n>', 'images per backbone run').default(32).argParser(atLeastOne('--batch-size')))
    .option('-o, --out <dir>', 'where rank.json, rank.svg and rank.png go', 'rank')
    .action(async (opts: RankCliOptions, cmd: Command) => {
      const { rank } = await import('../../choose/rank.js');
      const { formatRanking, writeRanking } = await import('../../choose/report.js');
      const { taskProgressBars } = await import('../../util/progress.js');
      const result = await rank({
        backbones: opts.backbones,
        data: opts.data,
        limit: opts.limit,
        k: opts.k,
        cut: opts.cut,
        seed: globals(cmd).seed,
        batchSize: opts.batchSize,
        probe: opts.probeEpochs ? { epochs: opts.probeEpochs } : undefined,
        onNote: (m) => note(cmd, m),
        onWarning: warner(cmd),
        onTaskProgress: taskProgressBars(),
      });
      const files = await writeRanking(result, opts.out);
      note(cmd, `wrote ${Object.values(files).join(', ')}`);
      emit(cmd, { ...result, files }, () => formatRanking(result));
      if (result.backbones.every((b) => b.error)) process.exitCode = 1;
    });
}
