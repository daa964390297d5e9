/**
 * Work that must not be lost is retried until it succeeds, except when the
 * error is one no retry can cure (a projector writing a view too large for a
 * message used to retry it for ever and stop every view behind it).
 */
import { describe, expect, it } from 'vitest';
import { untilDone } from '../../src/platform/retry.js';

describe('untilDone', () => {
  it('retries until the work succeeds, telling the first failure once', async () => {
    let calls = 0;
    const told: unknown[] = [];
    await untilDone(
      () => {
        calls += 1;
        return calls < 3 ? Promise.reject(new Error('server away')) : Promise.resolve();
      },
      { stopped: () => false, firstDelayMs: 1, onFirstFailure: (e) => told.push(e) },
    );
    expect(calls).toBe(3);
    expect(told).toHaveLength(1);
  });

  it('gives up at once on an error no retry can cure', async () => {
    let calls = 0;
    const refused = new RangeError('too large');
    await expect(
      untilDone(
        () => {
          calls += 1;
          return Promise.reject(refused);
        },
        { stopped: () => false, firstDelayMs: 1, onFirstFailure: () => undefined, permanent: (e) => e instanceof RangeError },
      ),
    ).rejects.toBe(refused);
    expect(calls).toBe(1);
  });
});
