/**
 * The faults soak, defined once for a single nats-server (soak.test.ts) and
 * for a three-node cluster (soak-cluster.test.ts). The faults soak (the faults issue): two managers, two driver hosts and the
 * projections as separate processes; workers run a mix of registrations
 * (sized and by STAT, dummy and fs), clones, acquire/release, persistence,
 * disable/enable, deletes and snapshot delete/revert/flatten on real qcow2
 * files, each command with a fixed id and re-sent with
 * that id after a timeout; meanwhile nats-server restarts three times
 * (SIGTERM, SIGKILL, SIGTERM), each manager and each driver host is killed
 * once. Afterwards the log is replayed with the machines and every guarantee
 * is checked: every command answered, no command committed twice, no commit
 * and no refusal the machine would have decided otherwise on the log's
 * state, nothing left in a transient state or holding a reservation, a
 * manager booting from the checkpoints and the projections equal the log,
 * the hash chains verify, and no role process ended by itself.
 */
import { existsSync, mkdtempSync, mkdirSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { jetstream } from '@nats-io/jetstream';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { NatsConnection } from '@nats-io/transport-node';
import { Kvm } from '@nats-io/kv';
import { RoleProcess } from './manager-process.js';
import { readLog } from './log.js';
import { duplicateCommits, viewsFromLog } from './replay.js';
import { eventually } from './eventually.js';
import { ImgrClient } from '../../src/client/index.js';
import { AggregateHost } from '../../src/actors/host.js';
import { EventStore } from '../../src/store/event-store.js';
import { provision, STREAMS } from '../../src/store/provision.js';
import { BUNDLED_DRIVERS, ManagerConfigSchema, type ManagerConfigInput } from '../../src/platform/config.js';
import { systemClock } from '../../src/platform/clock.js';
import { silentLogger } from '../../src/platform/logger.js';
import { verifyLog } from '../../src/audit/verify.js';
import { DEFAULT_DRIVER_TIMEOUTS } from '../../src/messages/driver.js';
import { activeGeneration, viewBuckets } from '../../src/projections/projector.js';
import { readBucket } from '../../src/store/kv.js';
import { readStream } from '../../src/store/read-stream.js';
import type { KV } from '@nats-io/kv';
import type { CommandInput, Outcome, Commit } from '../../src/messages/wire.js';
import type { ImageCommand } from '../../src/messages/image-commands.js';
import type { Actor } from '../../src/messages/envelope.js';
import type { ImageView } from '../../src/messages/image-record.js';

/** The NATS system a soak runs on: one server or a cluster, restarted as the faults say. */
export interface SoakNats {
  readonly url: string;
  connect(role?: 'manager' | 'auditor'): Promise<NatsConnection>;
  /** One server restarted (the only one, or one node of the cluster); `kill` with SIGKILL. */
  restart(o?: { kill?: boolean }): Promise<void>;
  dispose(): Promise<void>;
}

export function defineSoak(o: { nats: () => Promise<SoakNats>; title: string; claim: string; workloadMs: number }): void {
  const WORKLOAD_MS = Number(process.env['SOAK_MS'] ?? o.workloadMs);
  const WORKERS = 8;
  const TRANSIENT = new Set(['INIT', 'LOCKED', 'CLONE', 'DELETE', 'LOCKED_USED', 'LOCKED_USED_PERS']);

  let nats: SoakNats;
  let dir: string;
  let config: ManagerConfigInput;
  const roles: { managers: RoleProcess[]; drivers: RoleProcess[]; projections?: RoleProcess } = { managers: [], drivers: [] };
  let client: ImgrClient;

  beforeAll(async () => {
    nats = await o.nats();
    dir = mkdtempSync(join(tmpdir(), 'imgr-soak-'));
    mkdirSync(join(dir, 'import'));
    writeFileSync(join(dir, 'import', 'disk.raw'), Buffer.alloc(1024 * 1024, 7));
    execFileSync('qemu-img', ['create', '-q', '-f', 'qcow2', join(dir, 'import', 'disk.qcow2'), '8M']);
    config = {
      // Short driver deadlines, so a request lost with a driver host ends within the test.
      timeouts: Object.fromEntries(Object.keys(DEFAULT_DRIVER_TIMEOUTS).map((a) => [a, 20])) as Record<keyof typeof DEFAULT_DRIVER_TIMEOUTS, number>,
      watchdogIntervalMs: 1_000,
      ackWaitMs: 3_000,
      snapshotIntervalMs: 2_000,
      // Sweeps with every monitor; a file nobody names is an orphan after the longest creation (20 s) and a margin.
      monitorIntervalMs: 3_000,
      orphanGraceMs: 25_000,
      drivers: { ...BUNDLED_DRIVERS, datastoreLocation: join(dir, 'ds') },
    };
    roles.managers = [await startManager(), await startManager()];
    roles.drivers = [await startDrivers(), await startDrivers()];
    roles.projections = await RoleProcess.start('projections', nats.url);
    client = await ImgrClient.connect({ servers: nats.url, actor: { uid: 0, gid: 0, name: 'oneadmin' } });
  });

  afterAll(async () => {
    await client.close();
    await Promise.allSettled([...roles.managers, ...roles.drivers, ...(roles.projections ? [roles.projections] : [])].map((r) => r.stop()));
    await nats.dispose();
    rmSync(dir, { recursive: true, force: true });
  });

  const startManager = (): Promise<RoleProcess> => RoleProcess.start('manager', nats.url, { IMGR_CONFIG: JSON.stringify(config) });
  const startDrivers = (): Promise<RoleProcess> => RoleProcess.start('drivers', nats.url, { IMGR_DATA_DIR: dir });

  interface Sent {
    readonly commandId: string;
    readonly command: CommandInput;
    readonly sentAt: number;
    outcome?: Outcome;
    answeredAt?: number;
  }

  const sent: Sent[] = [];

  /** Sends until an outcome arrives, always with the same id, as a careful service does. */
  async function sendSurely(command: CommandInput, commandId: string): Promise<Outcome> {
    const s: Sent = { commandId, command, sentAt: Date.now() };
    sent.push(s);
    for (;;) {
      try {
        s.outcome = await client.send(command, { commandId, timeoutMs: 5_000 });
        s.answeredAt = Date.now();
        return s.outcome;
      } catch {
        await sleep(200);
      }
    }
  }

  /** Waits until the image leaves its transient states (as the projections show it); null once deleted. */
  async function settled(id: number): Promise<string | null> {
    const until = Date.now() + 60_000;
    for (;;) {
      try {
        const v = await client.image(id);
        if (v === null || v.state === 'REMOVED') return null;
        if (!TRANSIENT.has(v.state) || Date.now() > until) return v.state;
      } catch {
        // The server is restarting.
      }
      await sleep(150);
    }
  }

  async function worker(w: number, datastores: { dummy: number; fs: number }, stopAt: number): Promise<void> {
    const mine = new Map<number, { vm: number | null }>();
    let n = 0;
    const id = (): string => `soak-w${w}-${++n}`;
    while (Date.now() < stopAt) {
      const ids = [...mine.keys()];
      const pick = ids[Math.floor(Math.random() * ids.length)];
      if (pick === undefined || (ids.length < 4 && Math.random() < 0.4)) {
        const kind = Math.random();
        const image = await nextImageId();
        const template =
          kind < 0.4
            ? { NAME: `w${w}-${n}`, PATH: '/srv/soak.img', SIZE: '1' }
            : kind < 0.65
              ? { NAME: `w${w}-${n}`, PATH: '/srv/soak.img' }
              : kind < 0.8
                ? { NAME: `w${w}-${n}`, PATH: join(dir, 'import', 'disk.raw'), SIZE: '1' }
                : { NAME: `w${w}-${n}`, PATH: join(dir, 'import', 'disk.qcow2'), SIZE: '8', PERSISTENT: 'YES' };
        const o = await sendSurely({ type: 'image.allocate', imageId: image, datastoreId: kind < 0.65 ? datastores.dummy : datastores.fs, template }, id());
        if (o.status === 'accepted' && (await settled(image)) !== null) mine.set(image, { vm: null });
        continue;
      }
      const state = await settled(pick);
      const held = mine.get(pick);
      if (state === null || held === undefined) {
        mine.delete(pick);
        continue;
      }
      const r = Math.random();
      const v = await client.image(pick).catch(() => null);
      if (v?.format === 'qcow2' && state === 'READY' && r < 0.6 && (await snapshots(v, held, () => id()))) continue;
      if (state === 'ERROR' || (state === 'READY' && r < 0.12)) {
        await sendSurely({ type: 'image.delete', imageId: pick, force: false }, id());
        if ((await settled(pick)) === null) mine.delete(pick);
      } else if (state === 'USED' || state === 'USED_PERS') {
        await sendSurely({ type: 'image.release', imageId: pick, vmId: held.vm ?? 0, failed: false }, id());
        held.vm = null;
      } else if (state === 'DISABLED') {
        await sendSurely({ type: 'image.enable', imageId: pick }, id());
      } else if (state === 'READY' && r < 0.45) {
        held.vm = w * 100_000 + n;
        await sendSurely({ type: 'image.acquire', imageId: pick, vmId: held.vm, mode: 'deploy' }, id());
      } else if (state === 'READY' && r < 0.6) {
        await sendSurely({ type: 'image.disable', imageId: pick }, id());
      } else if (state === 'READY' && r < 0.75) {
        if (v) await sendSurely({ type: 'image.setPersistent', imageId: pick, persistent: !v.persistent }, id());
      } else if (state === 'READY') {
        const clone = await nextImageId();
        const o = await sendSurely({ type: 'image.clone', imageId: clone, originId: pick, name: `w${w}-${n}-clone`, datastoreId: v?.datastore.id ?? datastores.dummy, persistent: false }, id());
        if (o.status === 'accepted' && (await settled(clone)) !== null) mine.set(clone, { vm: null });
        await settled(pick);
      }
    }
  }

  /**
   * Snapshots on a real qcow2 file: a VM (this worker) takes two while it holds
   * the persistent image and reports them; later ones delete, revert to or
   * flatten one of them through the driver. False when nothing applied.
   */
  async function snapshots(v: ImageView, held: { vm: number | null }, id: () => string): Promise<boolean> {
    const list = v.snapshots.list;
    if (list.length === 0) {
      if (!v.persistent) return false;
      held.vm = 900_000 + v.id;
      if ((await sendSurely({ type: 'image.acquire', imageId: v.id, vmId: held.vm, mode: 'deploy' }, id())).status !== 'accepted') return true;
      if ((await settled(v.id)) !== 'USED_PERS') return true;
      execFileSync('qemu-img', ['snapshot', '-c', '0', v.source]);
      execFileSync('qemu-img', ['snapshot', '-c', '1', v.source]);
      await sendSurely(
        {
          type: 'image.setSnapshots',
          imageId: v.id,
          snapshots: {
            mode: 'DENY',
            currentBase: -1,
            nextSnapshot: 2,
            list: [
              { id: 0, name: 's0', date: 1, parent: -1, children: [], active: false, size: 8 },
              { id: 1, name: 's1', date: 2, parent: -1, children: [], active: true, size: 8 },
            ],
          },
        },
        id(),
      );
      await sendSurely({ type: 'image.release', imageId: v.id, vmId: held.vm, failed: false }, id());
      held.vm = null;
      return true;
    }
    const inactive = list.find((x) => !x.active);
    const r = Math.random();
    if (inactive && r < 0.4) await sendSurely({ type: 'image.snapshotDelete', imageId: v.id, snapshotId: inactive.id }, id());
    else if (r < 0.7) await sendSurely({ type: 'image.snapshotRevert', imageId: v.id, snapshotId: (list[0] ?? { id: 0 }).id }, id());
    else await sendSurely({ type: 'image.snapshotFlatten', imageId: v.id, snapshotId: (list.at(-1) ?? { id: 0 }).id }, id());
    await settled(v.id);
    return true;
  }

  async function nextImageId(): Promise<number> {
    for (;;) {
      try {
        return await client.nextId('image');
      } catch {
        await sleep(200);
      }
    }
  }

  /** The faults, one after the other, each restarted after 1 to 3 s. */
  async function faults(stopAt: number): Promise<string[]> {
    const done: string[] = [];
    const pause = (): Promise<void> => sleep(1_000 + Math.random() * 2_000);
    const plan: (() => Promise<void>)[] = [
      async () => nats.restart(),
      async () => {
        await roles.managers[0]?.kill();
        await pause();
        roles.managers[0] = await startManager();
      },
      async () => {
        await roles.drivers[0]?.kill();
        await pause();
        roles.drivers[0] = await startDrivers();
      },
      async () => nats.restart({ kill: true }),
      async () => {
        await roles.managers[1]?.kill();
        await pause();
        roles.managers[1] = await startManager();
      },
      async () => {
        await roles.drivers[1]?.kill();
        await pause();
        roles.drivers[1] = await startDrivers();
      },
      async () => nats.restart(),
    ];
    const gap = (stopAt - Date.now()) / (plan.length + 1);
    for (const [i, fault] of plan.entries()) {
      await sleep(gap * (0.7 + Math.random() * 0.3));
      await fault();
      done.push(`fault ${i + 1}`);
    }
    return done;
  }

  /** Every commit in log order with the state the machines had before it, and the refusals at their time. */
  function replay(log: readonly { seq: number; commit: Commit }[], store: EventStore, snapshots: KV): { wrongCommits: string[]; wrongRefusals: string[] } {
    // Never booted and never checkpointed (the partition count only names checkpoints): it only folds the commits given and decides on them.
    const host = new AggregateHost(store, snapshots, ManagerConfigSchema.parse(config), systemClock, silentLogger(), 1);
    const byId = new Map(sent.map((s) => [s.commandId, s]));
    const actor: Actor | undefined = log.find((l) => byId.has(l.commit.commandId))?.commit.actor;
    const refusals = sent.filter((s) => s.outcome?.status === 'rejected').sort((x, y) => (x.answeredAt ?? 0) - (y.answeredAt ?? 0));
    const wrongCommits: string[] = [];
    const wrongRefusals: string[] = [];
    const checkRefusalsUpTo = (at: number): void => {
      while (refusals.length > 0 && (refusals[0]?.answeredAt ?? 0) < at) {
        const s = refusals.shift();
        if (!s || !actor || s.outcome?.status !== 'rejected') continue;
        // A STAT that failed while no driver host ran is a refusal the log cannot show.
        if (s.command.type === 'image.allocate' && !('SIZE' in s.command.template)) continue;
        const d = host.decideOnly(s.command as ImageCommand, { commandId: s.commandId, at: s.sentAt, actor });
        if (d.ok) wrongRefusals.push(`${s.commandId} ${s.command.type} refused "${s.outcome.message}" but the log's state accepts it`);
      }
    };
    for (const { seq, commit } of log) {
      checkRefusalsUpTo(commit.at);
      const s = byId.get(commit.commandId);
      if (s) {
        const stat = s.command.type === 'image.allocate' && !('SIZE' in s.command.template) ? { statSizeMb: 1024, statFailure: null } : undefined;
        const d = host.decideOnly(s.command as ImageCommand, { commandId: commit.commandId, at: commit.at, actor: commit.actor }, stat);
        const fact = commit.facts[0];
        if (!d.ok) wrongCommits.push(`${commit.commandId}@${seq} ${s.command.type} committed ${fact?.type ?? '?'} but the log's state refuses: ${d.rejection.message}`);
        else if (d.fact.type !== fact?.type || d.fact.state !== fact.state) wrongCommits.push(`${commit.commandId}@${seq} committed ${fact?.type ?? '?'}/${fact?.state ?? '?'}, the machine decides ${d.fact.type}/${d.fact.state}`);
      }
      host.fold({ seq, subject: `imgr.evt.${commit.aggregate}.${commit.id}`, commit, hash: '', effects: undefined });
    }
    checkRefusalsUpTo(Number.MAX_SAFE_INTEGER);
    return { wrongCommits, wrongRefusals };
  }

  /** Refusals the log keeps for imgr's own commands (driver replies, timeouts) that said an image does not exist. */
  async function internalNotFound(): Promise<string[]> {
    const nc = await nats.connect('manager');
    const out: string[] = [];
    for (const m of await readStream(nc, STREAMS.rejected)) {
      const r = JSON.parse(m.string()) as { subject: string; code: string; message: string; commandId: string | null };
      if ((r.subject.startsWith('imgr.int.') || r.subject.startsWith('imgr.drv-reply.')) && r.code === 'IMG_ERR_NOT_FOUND') out.push(`${r.commandId ?? '?'}: ${r.message}`);
    }
    return out;
  }

  describe(o.title, () => {
    it(o.claim, async () => {
      const dummy = await client.nextId('datastore');
      expect((await client.send({ type: 'datastore.create', datastoreId: dummy, template: { NAME: 'soak-dummy', DS_MAD: 'dummy', TM_MAD: 'dummy', SAFE_DIRS: '/srv' } })).status).toBe('accepted');
      const fs = await client.nextId('datastore');
      const safe = `${join(dir, 'import')} ${join(dir, 'ds')}`;
      expect((await client.send({ type: 'datastore.create', datastoreId: fs, template: { NAME: 'soak-fs', DS_MAD: 'fs', TM_MAD: 'shared', SAFE_DIRS: safe } })).status).toBe('accepted');
      await eventually(async () => ((await client.datastore(dummy))?.state === 'READY' ? true : undefined), 'datastores projected');

      const stopAt = Date.now() + WORKLOAD_MS;
      const [done] = await Promise.all([faults(stopAt), ...Array.from({ length: WORKERS }, (_, w) => worker(w, { dummy, fs }, stopAt))]);
      expect(done).toHaveLength(7);

      // Quiet: every image leaves its transient state (by its driver reply or the watchdog).
      const nc = await nats.connect('manager');
      let log = await readLog(nc);
      await eventually(
        async () => {
          log = await readLog(nc);
          const { images } = viewsFromLog(log);
          return [...images.values()].every((v) => !TRANSIENT.has(v.state)) ? true : undefined;
        },
        'no image in a transient state',
        120_000,
      );
      await sleep(3_000);
      log = await readLog(nc);
      const views = viewsFromLog(log);

      const refused = sent.filter((s) => s.outcome?.status === 'rejected').length;
      const snapshotOps = sent.filter((s) => s.command.type.startsWith('image.snapshot')).length;
      process.stdout.write(`soak: ${sent.length} commands (${refused} refused, ${snapshotOps} on qcow2 snapshots), ${log.length} commits, ${views.images.size} images, faults: ${done.length}\n`);
      expect(sent.length).toBeGreaterThan(100);
      expect(snapshotOps).toBeGreaterThan(0);
      expect(sent.filter((s) => s.outcome === undefined).map((s) => s.commandId)).toEqual([]);
      expect(duplicateCommits(log)).toEqual([]);
      const p = await provision(nc);
      const { wrongCommits, wrongRefusals } = replay(log, new EventStore(nc, p.jsm), p.snapshots);
      expect(wrongCommits).toEqual([]);
      expect(wrongRefusals).toEqual([]);
      expect(await internalNotFound()).toEqual([]);
      expect([...views.images.values()].filter((v) => TRANSIENT.has(v.state)).map((v) => `${v.id} ${v.state}`)).toEqual([]);
      // A reservation left (an image still holding space, W38) says with the image's commits, to find which step went missing.
      const leftOver = [...views.images.values()]
        .filter((v) => v.reservedMb > 0)
        .map((v) => {
          const about = log.filter((l) => l.commit.aggregate === 'image' && l.commit.id === v.id);
          return `ds ${v.datastore.id}: image ${v.id} ${v.reservedMb} MB in ${v.state}; ${about.map((l) => `${l.seq} ${l.commit.commandId}: ${l.commit.facts.map((f) => `${f.type}->${f.state}`).join(', ')}`).join(' | ')}`;
        });
      expect(leftOver).toEqual([]);
      // Every clone ended, so no origin is still held for one.
      expect([...views.images.values()].filter((v) => v.state !== 'REMOVED' && v.clones.length > 0).map((v) => `${v.id} ${v.state} holds ${v.clones.join(',')}`)).toEqual([]);

      // No file in the fs datastore that no image names (a copy run again after its driver host died left one).
      const fsBase = join(dir, 'ds', String(fs));
      const named = new Set([...views.images.values()].filter((v) => v.state !== 'REMOVED').map((v) => v.source));
      const orphanFiles = (): string[] => (existsSync(fsBase) ? readdirSync(fsBase).map((f) => join(fsBase, f)).filter((f) => !named.has(f)) : []);
      // A late success is reclaimed by an RM of its own, a file no reply names by the sweep after its grace.
      await eventually(() => orphanFiles().length === 0, 'orphaned files reclaimed', 60_000).catch(() => undefined);
      const orphans = orphanFiles();
      // The fs driver names a file md5(<request id>:<image id>), the request id being the command that started it.
      const history = (file: string): string => {
        const made = log.find((l) => createHash('md5').update(`${l.commit.commandId}:${l.commit.id}`).digest('hex') === file.split('/').at(-1));
        if (!made) return `${file}: no request of the log`;
        const facts = log.filter((l) => l.commit.aggregate === 'image' && l.commit.id === made.commit.id).map((l) => `${l.commit.commandId} ${l.commit.facts.map((f) => `${f.type}->${f.state} ${JSON.stringify(f.detail)} ${JSON.stringify(f.effects)}`).join(',')}`);
        return `${file}: image ${made.commit.id}: ${facts.join(' | ')}`;
      };
      expect(orphans.map(history)).toEqual([]);

      // A manager booting from the checkpoints the two managers wrote has the log's state.
      expect(roles.managers.filter((m) => m.exitCode !== null).map((m) => m.output.join('').slice(-2000))).toEqual([]);
      await Promise.all(roles.managers.map((m) => m.stop()));
      const fresh = new AggregateHost(new EventStore(nc, p.jsm), p.snapshots, ManagerConfigSchema.parse(config), systemClock, silentLogger(), p.partitions);
      await fresh.boot();
      const differing = [...views.images.values()].filter((v) => JSON.stringify(fresh.image(v.id)) !== JSON.stringify(v)).map((v) => v.id);
      expect(differing).toEqual([]);
      await fresh.stop();

      // The projections equal a rebuild from the log.
      const names = viewBuckets(await activeGeneration(p.meta));
      const projectionDiff = async (): Promise<string[]> => {
        const projected = new Map<number, string>();
        await readBucket(jetstream(nc), await new Kvm(nc).open(names.images), (key, text) => projected.set(Number(key), JSON.stringify((JSON.parse(text) as { view: unknown }).view)));
        const live = [...views.images.values()].filter((v) => v.state !== 'REMOVED');
        return live.filter((v) => projected.get(v.id) !== JSON.stringify(v)).map((v) => `${v.id}: projected ${projected.get(v.id) ?? 'nothing'}, log ${JSON.stringify(v)}`);
      };
      await eventually(async () => ((await projectionDiff()).length === 0 ? true : undefined), 'projections equal the log', 30_000).catch(() => undefined);
      expect(await projectionDiff()).toEqual([]);

      expect((await verifyLog(nc)).ok).toBe(true);
      const ended = [...roles.drivers, roles.projections].filter((r) => r?.exitCode !== null).map((r) => `${r?.role ?? '?'}: ${r?.output.join('').slice(-2000) ?? ''}`);
      expect(ended).toEqual([]);
    }, 400_000);
  });
}
