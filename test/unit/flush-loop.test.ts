/**
 * The projector's writer: one flush at a time, work marked during a flush
 * starts exactly one more, and `idle` waits for all of it.
 */
import { describe, expect, it } from 'vitest';
import { FlushLoop } from '../../src/projections/flush-loop.js';

describe('FlushLoop', () => {
  it('runs one flush at a time and batches what is marked meanwhile into the next one', async () => {
    const marked: number[] = [];
    const flushed: number[][] = [];
    let running = 0;
    let overlap = false;
    let release: (() => void) | undefined;
    const loop = new FlushLoop(async () => {
      running += 1;
      overlap ||= running > 1;
      const batch = marked.splice(0);
      if (flushed.length === 0) await new Promise<void>((r) => (release = r));
      flushed.push(batch);
      running -= 1;
    }, () => undefined);
    marked.push(1);
    loop.kick();
    // Three changes while the first flush waits: one more flush takes them all.
    for (const n of [2, 3, 4]) {
      marked.push(n);
      loop.kick();
    }
    release?.();
    await loop.idle();
    expect(flushed).toEqual([[1], [2, 3, 4]]);
    expect(overlap).toBe(false);
  });

  it('reports a failed flush and runs again on the next kick', async () => {
    const errors: unknown[] = [];
    let calls = 0;
    const loop = new FlushLoop(() => {
      calls += 1;
      return calls === 1 ? Promise.reject(new Error('server away')) : Promise.resolve();
    }, (e) => errors.push(e));
    loop.kick();
    await loop.idle();
    loop.kick();
    await loop.idle();
    expect(calls).toBe(2);
    expect(errors).toHaveLength(1);
  });

  it('under load starts flushes no closer than its spacing, so more changes batch; idle, it writes at once', async () => {
    const starts: number[] = [];
    const loop = new FlushLoop(() => {
      starts.push(performance.now());
      return Promise.resolve();
    }, () => undefined, 50);
    loop.kick();
    // Idle: the first flush started within the kick.
    expect(starts).toHaveLength(1);
    // Kicked again during it: the second waits for the spacing.
    loop.kick();
    await loop.idle();
    expect(starts).toHaveLength(2);
    expect((starts[1] ?? 0) - (starts[0] ?? 0)).toBeGreaterThanOrEqual(50);
  });
});
