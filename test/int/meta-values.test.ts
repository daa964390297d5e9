/**
 * A meta value that fails to parse never resets what it holds: an
 * unreadable principals value (as an answer once wrote `null` there for a
 * read-only asker) keeps the last good principals, live and at a start, and
 * says so, instead of leaving every principal unknown.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Kvm, type KV } from '@nats-io/kv';
import { pino } from 'pino';
import { TestNats } from '../support/nats.js';
import { eventually } from '../support/eventually.js';
import { PrincipalRegistry } from '../../src/intake/principal-registry.js';
import { PRINCIPALS_KEY } from '../../src/platform/principals.js';
import { BUCKETS } from '../../src/messages/names.js';

let nats: TestNats;
let meta: KV;
beforeAll(async () => {
  nats = await TestNats.start();
  meta = await new Kvm(await nats.connect('manager')).open(BUCKETS.meta);
});
afterAll(async () => nats.dispose());

/** A logger whose error lines the test reads. */
function recording(): { log: pino.Logger; errors: string[] } {
  const errors: string[] = [];
  const log = pino({ level: 'error' }, { write: (line: string) => void errors.push(line) });
  return { log, errors };
}

describe('unreadable principals in imgr_meta', () => {
  it.each(['null', '"a string"', 'not json', '[]', '42'])('(%s) at a start: the last readable ones stand in, with an alert', async (junk) => {
    const good = (await meta.get(PRINCIPALS_KEY))?.string() ?? '';
    await meta.put(PRINCIPALS_KEY, junk);
    try {
      const { log, errors } = recording();
      const registry = await PrincipalRegistry.start(meta, log);
      try {
        expect(registry.get('alice')).toMatchObject({ uid: 7, gid: 100 });
        expect(registry.get('oneadmin')).toMatchObject({ admin: true });
        expect(errors.join('\n')).toMatch(/principals in imgr_meta are unreadable: the last readable ones stand in/);
      } finally {
        registry.stop();
      }
    } finally {
      await meta.put(PRINCIPALS_KEY, good);
    }
  });

  it('while running: the principals before are kept, with an alert', async () => {
    const good = (await meta.get(PRINCIPALS_KEY))?.string() ?? '';
    const { log, errors } = recording();
    const registry = await PrincipalRegistry.start(meta, log);
    try {
      await meta.put(PRINCIPALS_KEY, 'null');
      await eventually(() => errors.some((e) => e.includes('unreadable principals in imgr_meta: keeping the ones before')), 'the alert');
      expect(registry.get('alice')).toMatchObject({ uid: 7 });
    } finally {
      registry.stop();
      await meta.put(PRINCIPALS_KEY, good);
    }
  });
});
