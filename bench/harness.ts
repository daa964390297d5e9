import { writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { natsServerBinary, startNatsServer, type NatsServer } from '../src/platform/nats-server.js';
import { writeServerConfig } from '../src/platform/nats-auth.js';
import type { Principals } from '../src/platform/principals.js';
import { runScript } from '../src/driver-host/run.js';

export interface Result {
  readonly scenario: string;
  readonly variant: string;
  readonly ops: number;
  readonly seconds: number;
  readonly note?: string;
  /** What the row reports when it is not a rate (a latency, a size). */
  readonly figure?: string;
  /** The target for the figure, when it sets one. */
  readonly target?: string;
}

/** Runs `op` repeatedly for about `ms`, after a warm-up, and reports operations per second. */
export async function measure(scenario: string, variant: string, ms: number, op: (i: number) => unknown, note?: string): Promise<Result> {
  for (let i = 0; i < 200; i++) await op(i);
  const start = performance.now();
  let n = 0;
  while (performance.now() - start < ms) {
    await op(n);
    n += 1;
  }
  return { scenario, variant, ops: n, seconds: (performance.now() - start) / 1000, ...(note !== undefined ? { note } : {}) };
}

/** "2.15.1" for a nats-server binary, "unknown" when it does not say. */
export function serverVersion(binary: string): string {
  try {
    return /v?(\d+\.\d+\.\d+)/.exec(execFileSync(binary, ['--version'], { encoding: 'utf8' }))?.[1] ?? 'unknown';
  } catch {
    return 'unknown';
  }
}

export function machine(): string {
  const cpu = cpus()[0]?.model ?? 'unknown CPU';
  return `${cpus().length} × ${cpu}, Node ${process.version}, nats-server ${serverVersion(natsServerBinary())}`;
}

export const rate = (r: Result): number => r.ops / r.seconds;

/**
 * A nats-server for a benchmark: imgr's nats.conf with generated users for
 * the roles and the `bench` principal, credentials beside the store.
 */
export async function startBenchServer(store: string, binary?: string): Promise<NatsServer> {
  process.env['IMGR_CREDENTIALS_DIR'] = join(store, 'credentials');
  const configFile = writeServerConfig(fileURLToPath(new URL('../nats.conf', import.meta.url)), BENCH_PRINCIPALS, join(store, 'credentials'), join(store, 'nats.conf'));
  return startNatsServer({ configFile, storeDir: join(store, 'js'), port: 'random', ...(binary !== undefined ? { binary } : {}) });
}

/** A nats-server with JetStream and no users: what the raw baselines measure, without imgr's permissions in the way. */
export async function startOpenBenchServer(store: string, binary?: string): Promise<NatsServer> {
  const configFile = join(store, 'open.conf');
  writeFileSync(configFile, 'jetstream {}\n');
  return startNatsServer({ configFile, storeDir: join(store, 'js'), port: 'random', ...(binary !== undefined ? { binary } : {}) });
}

export const BENCH_PRINCIPALS: Principals = { bench: { uid: 0, gid: 0, admin: true, delegate: false, uids: [], gids: [], vmService: false } };

/** The bundled dummy driver's copy script, which registrations in the benchmarks run. */
export const DUMMY_CP = fileURLToPath(new URL('../drivers/dummy/cp', import.meta.url));

/**
 * The raw baseline of anything that runs a driver: `count` runs of one
 * script through the driver host's own runner, `concurrency` at once (the
 * driver host's default), each with a driver document's worth of stdin.
 * Every action is a process (driver contract), so this is what spawning
 * costs on the machine.
 */
export async function scriptRuns(script: string, concurrency: number, count: number): Promise<{ ops: number; seconds: number }> {
  const stdin = Buffer.alloc(3000, 'PERSTU').toString('base64');
  let next = 0;
  const start = performance.now();
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < count) {
        next += 1;
        const r = await runScript({ script, args: ['1'], stdin, env: {}, timeoutMs: 30_000, graceMs: 1_000, maxStdoutBytes: 1 << 20 });
        if (r.exitCode !== 0) throw new Error(`${script} failed: ${r.stderr.join(' ')}`);
      }
    }),
  );
  return { ops: count, seconds: (performance.now() - start) / 1000 };
}
