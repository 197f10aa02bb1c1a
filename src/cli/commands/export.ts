/**
 * `graft export --web <model> --out <dir>`: writes a static web bundle that classifies images in a browser on
 * onnxruntime-web with graft's exact preprocessing (run/web-bundle.ts; docs/cli/export.md).
 */
import { type Command, Option } from 'commander';
import { CliError, emit } from '../context.js';
import { probability } from './predict.js';

interface ExportOptions {
  web?: boolean;
  out: string;
  threshold?: number;
  preprocess?: string;
  overwrite?: boolean;
}

/** Registers `graft export`. */
export function register(program: Command): void {
  program
    .command('export')
    .description('export a trained model for another runtime: --web writes a static page + ES module that classify in the browser (onnxruntime-web)')
    .argument('<model>', 'the .onnx model (with its model.json sidecar) or a run folder written by graft train')
    .option('--web', 'write a web bundle: model, model.json, graft/ (browser code), ort/ (onnxruntime-web wasm) and index.html')
    .requiredOption('-o, --out <dir>', 'folder to write the bundle into (new or empty)')
    .addOption(
      new Option('--threshold <p>', 'store an open-set threshold: the page labels an image "unknown" when its top probability is below p').argParser(
        probability('--threshold'),
      ),
    )
    .option('--preprocess <file>', "JSON preprocessing config to use instead of the model's")
    .option('--overwrite', 'replace --out when it already holds files')
    .action(async (model: string, opts: ExportOptions, cmd: Command) => {
      if (!opts.web) throw new CliError('graft export needs a target format; the one so far is --web (e.g. graft export --web runs/cats --out web/).');
      const { writeWebBundle } = await import('../../run/web-bundle.js');
      const r = await writeWebBundle(model, opts.out, { threshold: opts.threshold, preprocessFile: opts.preprocess, overwrite: opts.overwrite });
      const mb = (r.bytes / 1e6).toFixed(1);
      const m = r.meta;
      const input = m.kind === 'text' ? 'texts, tokenized in the page' : `input ${m.preprocess.size.join('x')}`;
      emit(
        cmd,
        { dir: r.dir, files: r.files, bytes: r.bytes, labels: m.labels, ...(m.kind === 'text' ? { kind: 'text' } : { preprocess: m.preprocess }) },
        () => [
          `wrote a web bundle for ${model} to ${r.dir} (${r.files.length} files, ${mb} MB): ${m.labels.length} classes, ${input}`,
          `serve the folder with any static server (e.g. python3 -m http.server -d ${r.dir} 8000, or examples/browser/serve.mjs) and open http://127.0.0.1:8000/`,
        ],
      );
    });
}
