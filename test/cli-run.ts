/** Runs the graft CLI (from source) as a user would, without blocking: for tests that run several cases side by side. */
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';

export const GRAFT_BIN = fileURLToPath(new URL('../bin/graft.js', import.meta.url));

export interface CliRun {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** `graft <args>` in `cwd`, with the given extra environment; resolves when the process exits. */
export function runGraft(args: string[], cwd: string, env: Record<string, string> = {}): Promise<CliRun> {
  return new Promise((resolve, reject) => {
    const p = spawn(process.execPath, [GRAFT_BIN, ...args], {
      cwd,
      env: { ...process.env, GRAFT_FROM_SOURCE: '1', GRAFT_DEBUG: '', NODE_OPTIONS: '', ...env },
    });
    let stdout = '';
    let stderr = '';
    p.stdout.on('data', (d) => (stdout += d));
    p.stderr.on('data', (d) => (stderr += d));
    p.on('error', reject);
    p.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}
