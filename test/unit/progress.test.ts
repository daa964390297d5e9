import { describe, expect, it } from 'vitest';
import { LogProgress } from '../../src/store/progress.js';

describe('LogProgress', () => {
  it('resolves each waiter once its sequence is applied, whatever order they came in', async () => {
    const p = new LogProgress(2);
    const done: number[] = [];
    const wait = (seq: number) => p.waitFor(seq).then(() => done.push(seq));
    const all = [wait(9), wait(4), wait(7), wait(4), wait(2), wait(12)];
    await Promise.resolve();
    expect(done).toEqual([2]);
    p.advance(5);
    await new Promise((r) => setImmediate(r));
    expect(done.sort((a, b) => a - b)).toEqual([2, 4, 4]);
    p.advance(3); // behind: changes nothing
    p.advance(9);
    await new Promise((r) => setImmediate(r));
    expect(done.sort((a, b) => a - b)).toEqual([2, 4, 4, 7, 9]);
    expect(p.applied).toBe(9);
    p.advance(12);
    await Promise.all(all);
    expect(done).toContain(12);
  });
});
