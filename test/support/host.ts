import { expect } from 'vitest';
import type { TestNats } from './nats.js';
import { AggregateHost } from '../../src/actors/host.js';
import { EventStore } from '../../src/store/event-store.js';
import { provision } from '../../src/store/provision.js';
import { ManagerConfigSchema } from '../../src/platform/config.js';
import { systemClock } from '../../src/platform/clock.js';
import { silentLogger } from '../../src/platform/logger.js';

/** An aggregate host of its own (no intake, no reactors) booted from the store's checkpoints and log, as a restarting manager's. */
export async function bootedHost(nats: TestNats): Promise<AggregateHost> {
  const nc = await nats.connect('manager');
  const p = await provision(nc);
  const h = new AggregateHost(new EventStore(nc, p.jsm), p.snapshots, ManagerConfigSchema.parse({}), systemClock, silentLogger(), p.partitions);
  await h.boot();
  return h;
}

/** The sequence an accepted command committed at; fails the test on any other outcome. */
export async function accepted(p: Promise<{ status: string; seq?: number }>): Promise<number> {
  const o = await p;
  expect(o).toMatchObject({ status: 'accepted' });
  return o.seq ?? 0;
}
