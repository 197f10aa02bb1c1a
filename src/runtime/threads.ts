/**
 * The onnxruntime intra-op thread count of sessions whose options name none. Sessions take `threads`
 * explicitly (SessionOptions, StepRunner.create); this is only the default. It is, in order: the process default
 * set by {@link setDefaultThreads} (the CLI's --threads), then env GRAFT_THREADS (how a parent process, such as
 * tune's worker pool, hands a child its thread budget), then every core. This is the one place that reads it,
 * and the one place that decides whether idle intra-op threads spin-wait ({@link defaultSpinning}).
 */
import os from 'node:os';

let processDefault: number | undefined;

/** Sets (or, with undefined, clears) the thread count of sessions that name none; throws unless a positive integer. */
export function setDefaultThreads(threads: number | undefined): void {
  if (threads !== undefined && !(Number.isInteger(threads) && threads > 0))
    throw new Error(`threads must be a positive integer (e.g. --threads 4), got ${threads}.`);
  processDefault = threads;
}

/** The thread count set explicitly ({@link setDefaultThreads}, else env GRAFT_THREADS), or undefined where none is. */
export function explicitThreads(): number | undefined {
  if (processDefault) return processDefault;
  const env = Number(process.env.GRAFT_THREADS);
  return Number.isInteger(env) && env > 0 ? env : undefined;
}

/** The thread count of a session whose options name none (see the module comment for the order). */
export function defaultThreads(): number {
  return explicitThreads() ?? Math.max(1, os.availableParallelism?.() ?? os.cpus().length);
}

/**
 * The thread count for a session whose kernels are too small to share out (a head on cached features at a small
 * batch: GEMMs of 32 rows): an explicit setting if there is one; else 1 on a quiet machine, where a second spinning
 * thread costs a hand-off per node for little work to split (bench:head at batch 32: 1 thread 1.6 s, 2 threads 2.2 s,
 * docs/benchmarks.md, head section, session 8); else, on a loaded machine, {@link defaultThreads} as any session gets
 * (blocking threads, which there beat one thread: "Threads under load").
 */
export function smallWorkThreads(): number {
  const set = explicitThreads();
  if (set) return set;
  const all = defaultThreads();
  return all > 1 && defaultSpinning(all) ? 1 : all;
}

/** What {@link spinningFor} decides from: the machine's cores, its 1-minute load average and this process's own share. */
export interface CpuState {
  /** Cores this process may use. */
  cores: number;
  /** The 1-minute load average (runnable threads, this process's included). */
  load: number;
  /** Cores this process itself kept busy on average (CPU time / uptime). */
  own: number;
}

/**
 * Whether `threads` intra-op threads should spin-wait between parallel sections: only when each has a core that no
 * other process is using (the load beyond this process's own leaves at least threads − ½ cores free). Spinning saves
 * a wake-up per parallel section on a quiet machine; when other processes hold the cores it burns the time slices the
 * working threads need: MobileNetV2's and SmallCNN's steps ran 1.5–2× slower with 2 spinning threads than with 2
 * blocking ones under load (docs/benchmarks.md, "Threads under load").
 */
export function spinningFor(threads: number, cpu: CpuState): boolean {
  const others = Math.max(0, cpu.load - Math.min(cpu.own, cpu.cores));
  return cpu.cores - others >= threads - 0.5;
}

/**
 * Whether a session with `threads` intra-op threads spin-waits when its options do not say: env GRAFT_ORT_SPIN=0 or
 * 1 decides outright, else {@link spinningFor} on the machine's state now (os.loadavg, which reads 0 where the OS has
 * none, so there threads spin as onnxruntime's default).
 */
export function defaultSpinning(threads: number): boolean {
  const env = process.env.GRAFT_ORT_SPIN;
  if (env === '0' || env === '1') return env === '1';
  const used = process.cpuUsage();
  const own = (used.user + used.system) / 1e6 / Math.max(1, process.uptime());
  return spinningFor(threads, { cores: Math.max(1, os.availableParallelism?.() ?? os.cpus().length), load: os.loadavg()[0] ?? 0, own });
}
