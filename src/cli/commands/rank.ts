/**
 * `graft rank --backbones a b c --data <folder|manifest|mnist>` (or `--encoders tfidf glove … --data texts.csv`
 * for text encoders): scores candidate backbones on a
 * class-stratified subsample without fine-tuning (LogME, SFDA, kNN and linear-probe accuracy; see
 * src/choose/), prints the ranking table and writes rank.json and rank.svg/png under --out.
 */
import { type Command, Option } from 'commander';
import { CliError, emit, globals, note } from '../context.js';
import { atLeastOne, warner } from './predict.js';

interface RankCliOptions {
  backbones?: string[];
  encoders?: string[];
  textColumn?: string;
  labelColumn?: string;
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
    .option(
      '--backbones <models...>',
      'candidate backbones: .onnx files, registry names (nsfwjs:MobileNetV2, see graft models) or arch:<small-cnn|lenet5|resnet18> (random init, a control)',
    )
    .option('--encoders <encoders...>', 'or candidate text encoders: tfidf, glove, glove-sif, or encoder .onnx files; --data is then text')
    .requiredOption(
      '-d, --data <path>',
      "labelled data: a folder of <class>/<images>, a CSV/JSONL manifest (path,label) or 'mnist'; with --encoders, a text CSV/TSV/JSONL or a folder of <class>/*.txt",
    )
    .option('--text-column <name>', "with --encoders: the column holding the text (default 'text')")
    .option('--label-column <name>', "with --encoders: the column holding the label (default 'label')")
    .addOption(new Option('--limit <n>', 'score at most n images (or texts), a class-stratified subsample').default(2000).argParser(atLeastOne('--limit')))
    .addOption(new Option('-k, --k <n>', 'neighbours of the kNN baseline').default(5).argParser(atLeastOne('--k')))
    .option('--cut <value>', "feature value for every backbone (default: each model's recorded cut, else the input of its classifier)")
    .addOption(new Option('--probe-epochs <n>', 'epochs of the linear probe (default 30)').argParser(atLeastOne('--probe-epochs')))
    .addOption(new Option('-b, --batch-size <n>', 'images (or texts) per backbone run').default(32).argParser(atLeastOne('--batch-size')))
    .option('-o, --out <dir>', 'where rank.json, rank.svg and rank.png go', 'rank')
    .action(async (opts: RankCliOptions, cmd: Command) => {
      const { rank } = await import('../../choose/rank.js');
      const { formatRanking, writeRanking } = await import('../../choose/report.js');
      const { taskProgressBars } = await import('../../util/progress.js');
      if (!opts.backbones === !opts.encoders)
        throw new CliError(
          opts.backbones
            ? '--backbones and --encoders exclude each other: rank image backbones on images, or text encoders on texts.'
            : 'graft rank needs the candidates: --backbones <models...> (image data) or --encoders <encoders...> (text data).',
        );
      if ((opts.textColumn || opts.labelColumn) && !opts.encoders) throw new CliError('--text-column/--label-column apply to text data: add --encoders.');
      const result = await rank({
        backbones: opts.backbones,
        encoders: opts.encoders,
        textColumn: opts.textColumn,
        labelColumn: opts.labelColumn,
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
