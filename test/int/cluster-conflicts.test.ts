/**
 * Racing writers on a three-node cluster: a clustered stream may refuse a
 * write whose expected last sequence another write in flight has already
 * claimed with "wrong last sequence" (code 10164, no sequence named) instead
 * of the single server's 10071. Every refusal must still read as a conflict,
 * never as a failure: a manager once exited at start when its lease's create
 * lost such a race.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { JetStreamApiError } from '@nats-io/jetstream';
import { Kvm } from '@nats-io/kv';
import { TestCluster } from '../support/cluster.js';
import { jetstreamManager } from '@nats-io/jetstream';
import { isConcurrencyError, isWrongLastSequence } from '../../src/store/errors.js';
import { BUCKETS } from '../../src/store/provision.js';
import { EventStore } from '../../src/store/event-store.js';
import type { Commit } from '../../src/messages/wire.js';
import { ADMIN } from '../support/fixtures.js';

let nodes: TestCluster;

/** The i-th of a few connections' clients, in turn: racing writers on different connections (and nodes). */
function pick<T>(all: readonly T[], i: number): T {
  const one = all[i % all.length];
  if (one === undefined) throw new Error('no client');
  return one;
}

beforeAll(async () => {
  nodes = await TestCluster.start();
}, 120_000);

afterAll(async () => {
  await nodes.dispose();
});

describe('racing writers on a cluster', () => {
  it('every create that loses the race for a key reads as a conflict', async () => {
    const kvs = await Promise.all([0, 1, 2].map(async () => new Kvm(await nodes.connect('manager')).open(BUCKETS.leases)));
    const codes = new Map<number, number>();
    for (let round = 0; round < 30; round++) {
      const results = await Promise.allSettled(Array.from({ length: 12 }, (_, i) => pick(kvs, i).create(`race.${round}`, String(i))));
      expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(1);
      for (const r of results) {
        if (r.status === 'fulfilled') continue;
        const e: unknown = r.reason;
        if (e instanceof JetStreamApiError) codes.set(e.code, (codes.get(e.code) ?? 0) + 1);
        expect(isWrongLastSequence(e)).toBe(true);
      }
    }
    process.stdout.write(`cluster conflicts: refusals by code ${JSON.stringify(Object.fromEntries(codes))}\n`);
  });

  it('every append and atomic batch that loses the race for an aggregate is a conflict, decided again', async () => {
    const stores = await Promise.all([0, 1, 2].map(async () => {
      const nc = await nodes.connect('manager');
      return new EventStore(nc, await jetstreamManager(nc));
    }));
    const commit = (id: number, n: number): Commit => ({ v: 1, aggregate: 'image', id, commandId: `race-${id}-${n}`, correlationId: 'race', causationId: null, actor: ADMIN, at: 0, prev: '', facts: [] });
    for (let id = 0; id < 20; id++) {
      const single = await Promise.allSettled(Array.from({ length: 9 }, (_, n) => pick(stores, n).append('image', id, commit(id, n), 0)));
      expect(single.filter((r) => r.status === 'fulfilled')).toHaveLength(1);
      expect(single.filter((r) => r.status === 'rejected' && !isConcurrencyError(r.reason)).map((r) => (r.status === 'rejected' ? String(r.reason) : ''))).toEqual([]);
      const batched = await Promise.allSettled(
        Array.from({ length: 6 }, (_, n) => pick(stores, n).appendAtomically([{ kind: 'image', id: 1_000 + id, commit: commit(1_000 + id, n), expectedSeq: 0 }, { kind: 'image', id: 2_000 + id, commit: commit(2_000 + id, n), expectedSeq: 0 }])),
      );
      expect(batched.filter((r) => r.status === 'fulfilled')).toHaveLength(1);
      expect(batched.filter((r) => r.status === 'rejected' && !isConcurrencyError(r.reason)).map((r) => (r.status === 'rejected' ? String(r.reason) : ''))).toEqual([]);
    }
  });
});
