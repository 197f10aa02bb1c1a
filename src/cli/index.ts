/**
 * The `graft` command line: builds the commander program (global options, one file per command under
 * ./commands) and runs it. `bin/graft.js` calls {@link main}; errors print one line and exit with code 1.
 */
import { realpathSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Command, CommanderError, Option } from 'commander';
import { registerStandardOps } from '../ops/index.js';
import { DEVICES, setDefaultDevice } from '../runtime/device.js';
import { setDefaultThreads } from '../runtime/threads.js';
import { configureProgress } from '../util/progress.js';
import { graftVersion } from '../util/version.js';
import { COMMANDS } from './commands/index.js';
import { formatError, type GlobalOptions, positiveInt } from './context.js';

/** Builds the program with every registered command; exposed for tests and embedding. */
export function buildProgram(): Command {
  registerStandardOps();
  const program = new Command('graft')
    .description('Transfer learning for TypeScript: inspect, cut, fine-tune and export ONNX models on onnxruntime-node.')
    .version(graftVersion(), '-V, --version', 'print the graft version')
    .addOption(new Option('--seed <n>', 'random seed for initialisation, shuffling and augmentation').argParser(positiveInt('--seed')))
    .addOption(new Option('--threads <n>', 'onnxruntime intra-op threads (default: all cores; env GRAFT_THREADS)').argParser(positiveInt('--threads')))
    .addOption(
      new Option('--device <name>', 'where onnxruntime runs: cpu, or webgpu where a WebGPU adapter exists (no silent fall back; env GRAFT_DEVICE)').choices(
        DEVICES,
      ),
    )
    .option('--json', 'machine-readable output: one JSON document on stdout, progress as JSON lines on stderr')
    .option('-q, --quiet', 'no progress or notes; results and errors only')
    .showSuggestionAfterError(true)
    .configureOutput({ outputError: (str, write) => write(`graft: ${str.trim().replace(/\s*\n\s*/g, ' ')}\n`) })
    .exitOverride();
  program.hook('preAction', (_root, action) => {
    const g = action.optsWithGlobals() as GlobalOptions;
    if (g.threads) setDefaultThreads(g.threads);
    if (g.device) setDefaultDevice(g.device);
    configureProgress({ json: !!g.json, quiet: !!g.quiet });
  });
  for (const c of COMMANDS) c.register(program);
  for (const c of program.commands) c.exitOverride();
  return program;
}

let stdoutGuarded = false;

/**
 * `graft … | head`: when the reader of stdout has gone, stop quietly with exit code 0, as cat and ls do
 * (Node would print an EPIPE stack trace and exit 1). Files graft writes are atomic, so stopping is safe.
 */
function exitQuietlyWhenStdoutCloses(): void {
  if (stdoutGuarded) return;
  stdoutGuarded = true;
  process.stdout.on('error', (e: NodeJS.ErrnoException) => {
    if (e.code === 'EPIPE') process.exit(0);
    throw e;
  });
}

/**
 * Runs the CLI on `argv` (as in process.argv: node, script, args…). Returns the exit code and sets
 * process.exitCode; never throws.
 */
export async function main(argv: string[] = process.argv): Promise<number> {
  exitQuietlyWhenStdoutCloses();
  const program = buildProgram();
  let code = 0;
  try {
    await program.parseAsync(argv);
  } catch (e) {
    if (e instanceof CommanderError) {
      // help and --version exit 0; commander already printed its own usage error
      code = e.exitCode;
    } else {
      process.stderr.write(`${formatError(e)}\n`);
      code = 1;
    }
  }
  process.exitCode = code;
  return code;
}

function isEntryPoint(): boolean {
  if (!process.argv[1]) return false;
  try {
    return realpathSync(process.argv[1]) === realpathSync(fileURLToPath(import.meta.url));
  } catch {
    return false;
  }
}

if (isEntryPoint()) await main();
