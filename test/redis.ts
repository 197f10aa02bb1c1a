/** A real redis-server on a free loopback port for one test file: `const redis = await startRedis(); … await redis.stop()`. */
import { type ChildProcess, spawn } from 'node:child_process';
import net from 'node:net';

/** A running redis-server started by {@link startRedis}. */
export interface TestRedis {
  port: number;
  /** `redis://127.0.0.1:<port>` */
  url: string;
  /** Stops the server (SIGTERM, then SIGKILL after 3 s) and waits for it to exit. */
  stop(): Promise<void>;
}

/** A port no one listens on now: listen on 0, read the port, close. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.on('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as net.AddressInfo;
      s.close(() => resolve(port));
    });
  });
}

/**
 * Starts `redis-server` (Debian's; .ci/run installs it) without persistence on a free port (or `fixedPort`: a restart
 * of a stopped one, empty); resolves once it accepts connections.
 */
export async function startRedis(fixedPort?: number): Promise<TestRedis> {
  const port = fixedPort ?? (await freePort());
  const proc: ChildProcess = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let log = '';
  proc.stdout!.on('data', (d) => (log += d));
  proc.stderr!.on('data', (d) => (log += d));
  const exited = new Promise<void>((r) => proc.once('exit', () => r()));
  await new Promise<void>((resolve, reject) => {
    proc.once('error', (e) => reject(new Error(`could not start redis-server (install it: apt-get install redis-server): ${e.message}`)));
    proc.once('exit', (code) => reject(new Error(`redis-server exited with ${code} before it was ready:\n${log}`)));
    const t0 = Date.now();
    const poll = () => {
      const c = net.connect(port, '127.0.0.1');
      c.once('connect', () => {
        c.destroy();
        resolve();
      });
      c.once('error', () => {
        c.destroy();
        if (Date.now() - t0 > 15_000) reject(new Error(`redis-server did not listen on ${port} within 15 s:\n${log}`));
        else setTimeout(poll, 50);
      });
    };
    poll();
  });
  return {
    port,
    url: `redis://127.0.0.1:${port}`,
    async stop() {
      if (proc.exitCode !== null || proc.signalCode !== null) return;
      proc.kill('SIGTERM');
      const t = setTimeout(() => proc.kill('SIGKILL'), 3000);
      await exited;
      clearTimeout(t);
    },
  };
}
