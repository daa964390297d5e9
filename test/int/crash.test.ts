/**
 * Crash recovery: the manager process is killed (SIGKILL) in the middle of a
 * stream of commands and started again. Every command is answered, no fact is
 * duplicated or lost, in-flight driver work completes, and the views equal
 * the log.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TestNats } from '../support/nats.js';
import { DriverResponder } from '../support/driver-responder.js';
import { ManagerProcess, type RoleProcess } from '../support/manager-process.js';
import { eventually } from '../support/eventually.js';
import { readLog } from '../support/log.js';
import { duplicateCommits, viewsFromLog } from '../support/replay.js';
import { verifyLog } from '../../src/audit/verify.js';
import { ImgrClient } from '../../src/client/index.js';
import type { CommandInput, Outcome } from '../../src/messages/wire.js';

const CONFIG = { ackWaitMs: 2_000, snapshotIntervalMs: 200 };
let nats: TestNats;
let drivers: DriverResponder;
let client: ImgrClient;
let manager: RoleProcess;

beforeAll(async () => {
  nats = await TestNats.start();
  manager = await ManagerProcess.start(nats.url, CONFIG);
  drivers = await DriverResponder.start(nats.url);
  client = await ImgrClient.connect({ servers: nats.url, actor: { uid: 0, gid: 0, name: 'oneadmin' } });
});

afterAll(async () => {
  await drivers.stop();
  await client.close();
  await manager.stop();
  await nats.dispose();
});

describe('SIGKILL of the manager mid-stream', () => {
  it('answers every command exactly once, duplicates and loses nothing, and rebuilds the same views', async () => {
    const ds = await client.nextId('datastore');
    expect((await client.send({ type: 'datastore.create', datastoreId: ds, template: { NAME: 'images', DS_MAD: 'fs', TM_MAD: 'shared' } })).status).toBe('accepted');

    const ids: number[] = [];
    for (let i = 0; i < 30; i++) ids.push(await client.nextId('image'));
    const commands: CommandInput[] = ids.flatMap((id) => [
      { type: 'image.allocate', imageId: id, datastoreId: ds, template: { NAME: `crash-${id}`, PATH: '/tmp/a', SIZE: '1' } },
      { type: 'image.chtype', imageId: id, imageType: 'DATABLOCK' },
    ]);

    // All commands go out at once; the manager dies while it works through them.
    const pending = commands.map((c, i) => client.send(c, { commandId: `crash-cmd-${i}`, timeoutMs: 60_000 }));
    await eventually(async () => (await client.image(ids[5] ?? -1))?.state !== undefined, 'some progress before the crash');
    await manager.kill();
    manager = await ManagerProcess.start(nats.url, CONFIG);
    const outcomes: Outcome[] = await Promise.all(pending);

    expect(outcomes.filter((o) => o.status !== 'accepted')).toEqual([]);
    expect(new Set(outcomes.map((o) => o.commandId)).size).toBe(commands.length);

    // In-flight driver requests were dispatched again or completed: every copy ends.
    await eventually(async () => {
      const views = await Promise.all(ids.map((id) => client.image(id)));
      return views.every((v) => v?.state === 'READY');
    }, 'every image READY');

    const log = await readLog(await nats.connect('manager'));
    expect(duplicateCommits(log)).toEqual([]);
    const bySeq = new Map(log.map((c) => [c.seq, c.commit.commandId]));
    for (const o of outcomes) if (o.status === 'accepted') expect(bySeq.get(o.seq)).toBe(o.commandId);

    const rebuilt = viewsFromLog(log);
    for (const id of ids) expect(await client.image(id)).toEqual(rebuilt.images.get(id));
    // The restarted manager probes its datastores at once, so compare once the log is quiet.
    await eventually(async () => {
      const now = viewsFromLog(await readLog(await nats.connect('manager')));
      return JSON.stringify(await client.datastore(ds)) === JSON.stringify(now.datastores.get(ds));
    }, 'datastore view equals the log');
    // The hash chain survives the crash: every commit names its aggregate's previous one.
    expect((await verifyLog(await nats.connect('auditor'))).breaks).toEqual([]);
    // Membership is the images whose facts name the datastore: a replay of the log finds every one once.
    const replayed = viewsFromLog(await readLog(await nats.connect('manager')));
    const members = [...replayed.images.values()].filter((v) => v.datastore.id === ds && v.state !== 'REMOVED').map((v) => v.id);
    expect(members.sort((x, y) => x - y)).toEqual([...ids].sort((x, y) => x - y));
  });

  it('a restart from the KV checkpoint alone (no replay of older history) gives the same views', async () => {
    // Its own images, so that the case passes alone as well as after the one above.
    const ds = await client.nextId('datastore');
    expect((await client.send({ type: 'datastore.create', datastoreId: ds, template: { NAME: `checkpointed-${ds}`, DS_MAD: 'fs', TM_MAD: 'shared' } })).status).toBe('accepted');
    const ids: number[] = [];
    for (let i = 0; i < 5; i++) {
      const id = await client.nextId('image');
      ids.push(id);
      expect((await client.send({ type: 'image.allocate', imageId: id, datastoreId: ds, template: { NAME: `ck-${id}`, PATH: '/tmp/a', SIZE: '1' } })).status).toBe('accepted');
    }
    await eventually(async () => (await Promise.all(ids.map((id) => client.image(id)))).every((v) => v?.state === 'READY'), 'READY');
    // Let the manager write a checkpoint past these commits (snapshotIntervalMs 200).
    await new Promise((r) => setTimeout(r, 1_000));
    const before = await readLog(await nats.connect('manager'));
    await manager.stop();
    manager = await ManagerProcess.start(nats.url, CONFIG);
    const rebuilt = viewsFromLog(before);
    for (const [id, view] of rebuilt.images) expect(await client.image(id)).toEqual(view);
    // A manager booted from the KV checkpoint continues the chains where they were.
    const again = await client.send({ type: 'image.disable', imageId: ids[0] ?? -1 });
    expect(again.status).toBe('accepted');
    const v = await verifyLog(await nats.connect('auditor'));
    expect(v).toMatchObject({ ok: true, breaks: [] });
    expect(v.commits).toBeGreaterThan(before.length);
  });
});
