/** The Redis connection of graft's queues, from a `redis://[user:password@]host:port[/db]` URL. */
import type { ConnectionOptions } from 'bullmq';

/** BullMQ key prefix of every graft queue. */
export const QUEUE_PREFIX = 'graft';
/** The queue of feature-extraction shards and their assembling parent jobs. */
export const EXTRACT_QUEUE = 'extract';
/** The queue of tune trials (one coordinator per study puts them there; any worker runs them). */
export const TUNE_QUEUE = 'tune';

/**
 * Parses a `--queue` URL into BullMQ connection options.
 * @throws naming the URL and the expected form when it is not a redis:// or rediss:// URL.
 */
export function redisConnection(url: string): ConnectionOptions {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new Error(`--queue "${url}" is not a URL; give the Redis server as redis://host:port (e.g. redis://127.0.0.1:6379).`);
  }
  if (u.protocol !== 'redis:' && u.protocol !== 'rediss:')
    throw new Error(`--queue "${url}" uses ${u.protocol}; graft's queue is Redis: give redis://host:port or rediss://host:port.`);
  const db = u.pathname.length > 1 ? Number(u.pathname.slice(1)) : 0;
  if (!Number.isInteger(db) || db < 0) throw new Error(`--queue "${url}": the database "${u.pathname.slice(1)}" must be a number, as in redis://host:6379/0.`);
  return {
    host: u.hostname || '127.0.0.1',
    port: u.port ? Number(u.port) : 6379,
    username: u.username ? decodeURIComponent(u.username) : undefined,
    password: u.password ? decodeURIComponent(u.password) : undefined,
    db,
    tls: u.protocol === 'rediss:' ? {} : undefined,
    // BullMQ workers block on Redis; ioredis must retry forever instead of failing commands
    maxRetriesPerRequest: null,
  };
}

/**
 * Fails fast when nothing answers at the queue's host and port (BullMQ's client would otherwise retry forever).
 * @throws naming the URL and how to fix it.
 */
export async function checkReachable(url: string, timeoutMs = 5000): Promise<void> {
  const { host, port } = redisConnection(url) as { host: string; port: number };
  const net = await import('node:net');
  await new Promise<void>((resolve, reject) => {
    const s = net.connect({ host, port });
    const fail = (why: string) => {
      s.destroy();
      reject(new Error(`cannot reach the Redis server of --queue ${url} (${why}); start redis-server there, or check the host, port and firewall.`));
    };
    s.setTimeout(timeoutMs, () => fail(`no answer in ${timeoutMs / 1000} s`));
    s.once('error', (e) => fail((e as NodeJS.ErrnoException).code ?? e.message));
    s.once('connect', () => {
      s.destroy();
      resolve();
    });
  });
}

/** The connection events of an ioredis client (BullMQ's, or one of ours). */
interface RedisEvents {
  on(event: 'error', f: (e: Error) => void): unknown;
  on(event: 'close' | 'ready', f: () => void): unknown;
}

/**
 * Says once when the connection to Redis is lost and once when it is back (ioredis reconnects by itself and
 * BullMQ's commands wait for it), instead of one error per retry or silence. Call `stop()` before closing the client.
 */
export function watchConnection(client: RedisEvents, url: string, who: string, say: (message: string) => void): { stop(): void } {
  let down = false;
  let stopped = false;
  let why = '';
  const lost = () => {
    if (down || stopped) return;
    down = true;
    say(
      `${who}: lost the connection to Redis at ${url} (${why || 'closed'}); reconnecting. Nothing is lost: the running work goes on and its results wait for the connection.`,
    );
  };
  client.on('error', (e) => {
    why = (e as NodeJS.ErrnoException).code ?? e.message;
    lost();
  });
  client.on('close', lost);
  client.on('ready', () => {
    why = '';
    if (!down) return;
    down = false;
    say(`${who}: reconnected to Redis at ${url}.`);
  });
  // our own close is no lost connection
  return { stop: () => void (stopped = true) };
}
