import { setTimeout as sleep } from 'node:timers/promises';

/**
 * Waits until `probe` returns a value that is not undefined/false, polling;
 * the bound only stops a broken test, it asserts no speed.
 */
export async function eventually<T>(probe: () => T | undefined | false | Promise<T | undefined | false>, what: string, boundMs = 60_000): Promise<T> {
  const until = Date.now() + boundMs;
  for (;;) {
    const v = await probe();
    if (v !== undefined && v !== false) return v;
    if (Date.now() > until) throw new Error(`gave up waiting for ${what}`);
    await sleep(20);
  }
}
