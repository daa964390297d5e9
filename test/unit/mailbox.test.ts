import { describe, expect, it } from 'vitest';
import { setTimeout as sleep } from 'node:timers/promises';
import { Mailboxes } from '../../src/actors/mailbox.js';

describe('mailboxes', () => {
  it('a task naming several keys runs after the earlier tasks of each, and later tasks of each wait for it', async () => {
    const m = new Mailboxes();
    const order: string[] = [];
    const task = (name: string, ms: number) => async () => {
      order.push(`${name} start`);
      await sleep(ms);
      order.push(`${name} end`);
    };
    await Promise.all([
      m.run('image.1', task('a', 30)),
      m.run('datastore.9', task('d', 10)),
      m.run(['image.2', 'datastore.9'], task('joined', 5)),
      m.run('datastore.9', task('later-d', 1)),
      m.run('image.3', task('other', 1)),
    ]);
    const at = (s: string) => order.indexOf(s);
    expect(at('joined start')).toBeGreaterThan(at('d end'));
    expect(at('later-d start')).toBeGreaterThan(at('joined end'));
    // Unrelated keys do not wait.
    expect(at('other start')).toBeLessThan(at('a end'));
    expect(m.size).toBe(0);
  });
  it('a failing task does not stop the next one', async () => {
    const m = new Mailboxes();
    await expect(m.run(['a', 'b'], () => Promise.reject(new Error('boom')))).rejects.toThrow('boom');
    await expect(m.run('b', () => Promise.resolve(7))).resolves.toBe(7);
  });
});
