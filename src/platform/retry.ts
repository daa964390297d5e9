import { setTimeout as sleep } from 'node:timers/promises';

/**
 * Runs `op` until it succeeds, backing off up to 2 s between tries: for work
 * already done whose record must not be lost while nats-server is away (a
 * view write, a driver's reply). `onFirstFailure` is told once; it gives up
 * when `stopped()` says the caller is stopping, or at once on an error
 * `permanent` says no retry can cure.
 */
export async function untilDone(
  op: () => Promise<unknown>,
  o: { stopped: () => boolean; onFirstFailure: (e: unknown) => void; firstDelayMs: number; permanent?: (e: unknown) => boolean },
): Promise<void> {
  for (let attempt = 0; ; attempt++) {
    try {
      await op();
      return;
    } catch (e) {
      if (o.stopped() || o.permanent?.(e) === true) throw e;
      if (attempt === 0) o.onFirstFailure(e);
      await sleep(Math.min(o.firstDelayMs * 2 ** attempt, 2_000));
    }
  }
}
