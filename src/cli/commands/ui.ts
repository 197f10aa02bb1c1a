/**
 * `graft ui [folder]`: a local web app to look at an image folder, train on it (runs queue), watch the curves
 * live, look at a finished run's mistakes, try images on its model, compare runs and download the exports.
 * The server (src/ui) listens on 127.0.0.1 and requires the random token in the printed URL on every request.
 */
import fs from 'node:fs';
import path from 'node:path';
import type { Command } from 'commander';
import { configFileOf } from '../../run/config.js';
import { CliError, positiveInt } from '../context.js';

/** Registers `graft ui`. */
export function register(program: Command): void {
  program
    .command('ui')
    .description('a local web app: look at an image folder, train (runs queue), watch live curves, look at mistakes, try images, compare, export')
    .argument('[folder]', 'image folder (one sub-folder per class) the app opens and may read', '.')
    .option('--also <folders...>', 'more folders the app may read images from')
    .option('--runs-dir <dir>', 'folder of run folders (listed, and where new runs are written)', 'runs')
    .option('--port <n>', 'port (0: any free port)', positiveInt('--port'), 7860)
    .option('--host <host>', 'address to listen on; anything but 127.0.0.1 exposes the app (token-protected) to the network', '127.0.0.1')
    .option('--config <file>', 'config under every run started from the app (graft.yaml); the form overrides it')
    .addHelpText('after', '\nSee docs/cli/ui.md.')
    .action(async (folder: string, o: { also?: string[]; runsDir: string; port: number; host: string; config?: string }) => {
      const folders = [folder, ...(o.also ?? [])].map((f) => path.resolve(f));
      for (const f of folders)
        if (!fs.statSync(f, { throwIfNoEntry: false })?.isDirectory())
          throw new CliError(`graft ui: ${f} is not a folder; give an image folder (graft ui photos/).`);
      const { createUiApp } = await import('../../ui/app.js');
      const { app, token } = await createUiApp({ folders, runsDir: o.runsDir, configFile: configFileOf(o.config)?.path });
      const address = await app.listen({ host: o.host, port: o.port }).catch((e: NodeJS.ErrnoException) => {
        throw new CliError(
          e.code === 'EADDRINUSE'
            ? `graft ui: port ${o.port} is in use; pick another with --port (0 for any free port).`
            : `graft ui: cannot listen on ${o.host}:${o.port}: ${e.message}`,
        );
      });
      const port = new URL(address).port;
      const host = o.host.includes(':') ? `[${o.host}]` : o.host;
      process.stdout.write(
        `graft ui: open http://${host}:${port}/?token=${token}\n(serving ${folders.join(', ')}; runs in ${path.resolve(o.runsDir)}; Ctrl+C stops)\n`,
      );
      const stop = () => void app.close().then(() => process.exit(0));
      process.once('SIGINT', stop);
      process.once('SIGTERM', stop);
    });
}
