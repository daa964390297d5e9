import { cpus } from 'node:os';
import { execFileSync } from 'node:child_process';
import { natsServerBinary } from '../src/platform/nats-server.js';

export interface Result {
  readonly scenario: string;
  readonly variant: string;
  readonly ops: number;
  readonly seconds: number;
  readonly note?: string;
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
