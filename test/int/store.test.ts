import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { jetstream } from '@nats-io/jetstream';
import { TestNats } from '../support/nats.js';
import { provision, STREAMS, SCHEMA_VERSION } from '../../src/store/provision.js';
import { EventStore, type LoggedCommit } from '../../src/store/event-store.js';
import { isConcurrencyError } from '../../src/store/errors.js';
import type { Commit } from '../../src/messages/wire.js';
import { history } from '../support/image-spec.js';
import { registerReady } from '../support/image-states.js';
import { ADMIN } from '../support/fixtures.js';

let nats: TestNats;
beforeAll(async () => {
  nats = await TestNats.start();
});
afterAll(async () => {
  await nats.dispose();
});

const commit = (commandId: string, id = 5): Commit => ({
  v: 1,
  aggregate: 'image',
  id,
  commandId,
  correlationId: commandId,
  causationId: null,
  actor: ADMIN,
  at: 1,
  prev: '',
  facts: history(id, registerReady({ id })),
});

describe('provisioning', () => {
  it('creates the streams and buckets, and running it again changes nothing', async () => {
    const nc = await nats.connect();
    const a = await provision(nc);
    const b = await provision(nc);
    const names: string[] = [];
    for await (const s of b.jsm.streams.list()) names.push(s.config.name);
    expect(names.sort()).toEqual([STREAMS.commands, STREAMS.internal, STREAMS.replies, STREAMS.driver, STREAMS.events, STREAMS.rejected, STREAMS.parked, 'KV_imgr_meta', 'KV_imgr_outcomes', 'KV_imgr_snapshots', 'KV_imgr_leases'].sort());
    expect((await a.meta.get('schema'))?.string()).toBe(String(SCHEMA_VERSION));
    const evt = await b.jsm.streams.info(STREAMS.events);
    expect(evt.config).toMatchObject({ deny_delete: true, deny_purge: true, max_age: 0 });
  });

  it('refuses a store written by a newer imgr', async () => {
    const nc = await nats.connect();
    const p = await provision(nc);
    await p.meta.put('schema', String(SCHEMA_VERSION + 1));
    await expect(provision(nc)).rejects.toMatchObject({ code: 'IMGR_STORE_TOO_NEW' });
    await p.meta.put('schema', String(SCHEMA_VERSION));
  });
});

describe('event store', () => {
  it('appends with the expected subject sequence, reports conflicts as ConcurrencyError, de-duplicates by command id on current state', async () => {
    const nc = await nats.connect();
    const p = await provision(nc);
    const store = new EventStore(nc, p.jsm);
    const first = await store.append('image', 5, commit('c-1'), 0);
    expect(first.duplicate).toBe(false);
    const second = await store.append('image', 5, commit('c-2'), first.seq);
    expect(second.seq).toBeGreaterThan(first.seq);
    const stale = await store.append('image', 5, commit('c-3'), first.seq).catch((e: unknown) => e);
    expect(isConcurrencyError(stale)).toBe(true);
    // nats-server >= 2.11 checks the expectation before de-duplicating: a retry on stale
    // state is a conflict (the host then catches up and finds its commit), and a retry
    // on current state is recognised as the duplicate it is.
    const staleRetry = await store.append('image', 5, commit('c-1'), first.seq).catch((e: unknown) => e);
    expect(isConcurrencyError(staleRetry)).toBe(true);
    const again = await store.append('image', 5, commit('c-1'), second.seq);
    expect(again).toMatchObject({ seq: first.seq, duplicate: true });
    expect(await store.lastSeqOf('image', 5)).toBe(second.seq);
    expect(await store.lastSeqOf('image', 999)).toBe(0);
  });

  it('tails the log from a sequence and skips what it cannot read', async () => {
    const nc = await nats.connect();
    const p = await provision(nc);
    const store = new EventStore(nc, p.jsm);
    const a = await store.append('image', 6, commit('t-1', 6), 0);
    await jetstream(nc).publish('imgr.evt.image.7', 'not json');
    await store.append('image', 8, commit('t-2', 8), 0);
    const seen: LoggedCommit[] = [];
    const last = await store.lastSeq();
    await new Promise<void>((resolve, reject) => {
      store
        .tail(a.seq, (c) => {
          seen.push(c);
          if (c.seq >= last) resolve();
        })
        .then((t) => setTimeout(() => void t.stop(), 5_000))
        .catch(reject);
    });
    expect(seen.map((s) => s.subject)).toEqual(['imgr.evt.image.6', 'imgr.evt.image.7', 'imgr.evt.image.8']);
    const unreadable = seen[1]?.commit;
    expect(unreadable && 'unreadable' in unreadable ? unreadable.unreadable : '').toMatch(/^not JSON/);
  });

  it('the log refuses deletes and purges', async () => {
    const nc = await nats.connect();
    const p = await provision(nc);
    await expect(p.jsm.streams.purge(STREAMS.events)).rejects.toThrow();
    await expect(p.jsm.streams.deleteMessage(STREAMS.events, 1)).rejects.toThrow();
  });
});
