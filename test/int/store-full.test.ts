/**
 * A full file system under the NATS store (the scale-out issue's disk-full
 * case): the store lives on a small tmpfs the test fills behind imgr's back.
 * nats-server stops storing (it reports a critical write error and answers
 * no publish until it restarts); senders get a clear timeout, the manager
 * keeps running; once space is back and the server restarted, every command
 * sent again with its id is answered once, nothing is committed twice, the
 * hash chains verify and the resident state equals the log.
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, statfsSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TestNats } from '../support/nats.js';
import { readLog } from '../support/log.js';
import { duplicateCommits, viewsFromLog } from '../support/replay.js';
import { Manager } from '../../src/manager.js';
import { ImgrClient } from '../../src/client/index.js';
import { silentLogger } from '../../src/platform/logger.js';
import { verifyLog } from '../../src/audit/verify.js';
import type { CommandInput, Outcome } from '../../src/messages/wire.js';

let mount: string;
let mounted = false;
let nats: TestNats;
let manager: Manager | undefined;
let client: ImgrClient;

beforeAll(async () => {
  mount = mkdtempSync(join(tmpdir(), 'imgr-store-full-'));
  // Root (CI and the project's machines) may mount; the error says so where it may not.
  execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=64m', 'imgr-store-full', mount]);
  mounted = true;
  mkdirSync(join(mount, 'js'));
  nats = await TestNats.start(undefined, { storeDir: join(mount, 'js') });
  manager = await Manager.start({ servers: nats.url, log: silentLogger(), config: { ackWaitMs: 2_000 } });
  client = await ImgrClient.connect({ servers: nats.url, actor: { uid: 0, gid: 0, name: 'oneadmin' } });
}, 60_000);

afterAll(async () => {
  await client.close();
  await manager?.stop();
  await nats.dispose();
  if (mounted) execFileSync('umount', [mount]);
  rmSync(mount, { recursive: true, force: true });
});

const create = (id: number): CommandInput => ({ type: 'datastore.create', datastoreId: id, template: { NAME: `full-${id}`, DS_MAD: 'dummy', TM_MAD: 'dummy' } });

describe('a full file system under the NATS store', () => {
  it('times senders out while it is full, loses and doubles nothing, and answers every command again after space returns', async () => {
    const ids: number[] = [];
    for (let i = 0; i < 40; i++) ids.push(await client.nextId('datastore'));
    const outcomes = new Map<string, Outcome>();
    // Some commands go through while there is space.
    for (const id of ids.slice(0, 5)) outcomes.set(`full-${id}`, await client.send(create(id), { commandId: `full-${id}` }));

    // Everything but a few kilobytes is taken by someone else's file.
    const filler = join(mount, 'filler');
    const fs = statfsSync(mount);
    writeFileSync(filler, Buffer.alloc(Math.max(0, fs.bavail * fs.bsize - 16 * 1024), 1));
    const failures: string[] = [];
    for (const id of ids.slice(5)) {
      try {
        outcomes.set(`full-${id}`, await client.send(create(id), { commandId: `full-${id}`, timeoutMs: 2_000 }));
      } catch (e) {
        failures.push(e instanceof Error ? ((e as { code?: string }).code ?? e.name) : String(e));
      }
    }
    // The store refused to grow: senders waited in vain and were told so.
    expect(failures.length).toBeGreaterThan(0);
    expect(new Set(failures)).toEqual(new Set(['IMGR_TIMEOUT']));

    // Space returns; the operator restarts nats-server (it stores nothing more until then).
    rmSync(filler);
    await nats.restart();
    for (const id of ids) {
      const commandId = `full-${id}`;
      for (let tries = 0; !outcomes.has(commandId); tries++) {
        try {
          outcomes.set(commandId, await client.send(create(id), { commandId, timeoutMs: 5_000 }));
        } catch (e) {
          if (tries > 20) throw e;
          await sleep(250);
        }
      }
    }
    expect([...outcomes.values()].filter((o) => o.status !== 'accepted')).toEqual([]);

    const nc = await nats.connect('manager');
    const log = await readLog(nc);
    expect(duplicateCommits(log)).toEqual([]);
    expect(ids.filter((id) => !log.some((l) => l.commit.aggregate === 'datastore' && l.commit.id === id))).toEqual([]);
    expect((await verifyLog(await nats.connect('auditor'))).breaks).toEqual([]);
    const views = viewsFromLog(log);
    await manager?.host.waitFor(log.at(-1)?.seq ?? 0);
    expect(ids.filter((id) => JSON.stringify(manager?.host.datastore(id)) !== JSON.stringify(views.datastores.get(id)))).toEqual([]);
  }, 180_000);
});
