/**
 * The operator endpoints of each role, as separate processes: after a known
 * load, /metrics shows the counters moved by exactly that load (commands by
 * type and status, driver runs and failures by DS_MAD and action, the
 * reactors' and the projections' work), the durables' backlogs, and /readyz
 * turns 503 while NATS is away and 200 once it is back.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEFAULT_PARTITIONS } from '../../src/messages/partitions.js';
import { TestNats } from '../support/nats.js';
import { ManagerProcess, RoleProcess } from '../support/manager-process.js';
import { eventually } from '../support/eventually.js';
import { ImgrClient } from '../../src/client/index.js';

let nats: TestNats;
let manager: RoleProcess;
let drivers: RoleProcess;
let projections: RoleProcess;
let c: ImgrClient;

beforeAll(async () => {
  nats = await TestNats.start();
  manager = await ManagerProcess.start(nats.url, { ackWaitMs: 2_000 });
  drivers = await RoleProcess.start('drivers', nats.url);
  projections = await RoleProcess.start('projections', nats.url);
  c = await ImgrClient.connect({ servers: nats.url, actor: { uid: 0, gid: 0, name: 'oneadmin' } });
});
afterAll(async () => {
  await c.close();
  for (const r of [projections, drivers, manager]) await r.stop();
  await nats.dispose();
});

/** One scrape: the value of a series by name and labels (all of them, in any order), 0 when absent. */
async function scrape(role: RoleProcess): Promise<(name: string, labels?: Record<string, string>) => number> {
  const res = await fetch(`${role.opsUrl}/metrics`);
  expect(res.status).toBe(200);
  expect(res.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/);
  const series = new Map<string, number>();
  for (const line of (await res.text()).split('\n')) {
    const m = /^([a-z_]+)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!m) continue;
    const labels = [...(m[2] ?? '').matchAll(/(\w+)="([^"]*)"/g)].map(([, k, v]) => `${k ?? ''}=${v ?? ''}`).sort();
    series.set(`${m[1] ?? ''}{${labels.join(',')}}`, Number(m[3]));
  }
  return (name, labels = {}) => series.get(`${name}{${Object.entries(labels).map(([k, v]) => `${k}=${v}`).sort().join(',')}}`) ?? 0;
}

const readyz = async (role: RoleProcess): Promise<{ status: number; body: { ready: boolean; checks: Record<string, boolean> } }> => {
  const res = await fetch(`${role.opsUrl}/readyz`);
  return { status: res.status, body: (await res.json()) as { ready: boolean; checks: Record<string, boolean> } };
};

describe('metrics and health', () => {
  it('counts a known load exactly', async () => {
    const before = { manager: await scrape(manager), drivers: await scrape(drivers), projections: await scrape(projections) };
    const dummy = await c.nextId('datastore');
    expect(await c.send({ type: 'datastore.create', datastoreId: dummy, template: { NAME: 'm-dummy', DS_MAD: 'dummy', TM_MAD: 'dummy', SAFE_DIRS: '/srv' } })).toMatchObject({ status: 'accepted' });
    const fs = await c.nextId('datastore');
    expect(await c.send({ type: 'datastore.create', datastoreId: fs, template: { NAME: 'm-fs', DS_MAD: 'fs', TM_MAD: 'shared' } })).toMatchObject({ status: 'accepted' });
    // Three registrations the dummy driver copies, one the fs driver cannot (no such file).
    const images: number[] = [];
    for (let i = 0; i < 3; i++) {
      const id = await c.nextId('image');
      images.push(id);
      expect(await c.send({ type: 'image.allocate', imageId: id, datastoreId: dummy, template: { NAME: `m-${id}`, PATH: '/srv/any', SIZE: '1' } })).toMatchObject({ status: 'accepted' });
    }
    const broken = await c.nextId('image');
    expect(await c.send({ type: 'image.allocate', imageId: broken, datastoreId: fs, template: { NAME: 'm-broken', PATH: '/no/such/file.raw', SIZE: '1' } })).toMatchObject({ status: 'accepted' });
    for (const id of images) await eventually(async () => (await c.image(id))?.state === 'READY', `image ${id} READY`);
    await eventually(async () => (await c.image(broken))?.state === 'ERROR', 'the broken copy in ERROR');
    // Five acquires and their releases, and two refusals (an image that does not exist).
    const [first] = images;
    if (first === undefined) throw new Error('no image');
    for (let vm = 1; vm <= 5; vm++) {
      expect(await c.send({ type: 'image.acquire', imageId: first, vmId: vm, mode: 'deploy' })).toMatchObject({ status: 'accepted' });
      expect(await c.send({ type: 'image.release', imageId: first, vmId: vm })).toMatchObject({ status: 'accepted' });
    }
    for (let i = 0; i < 2; i++) expect(await c.send({ type: 'image.acquire', imageId: 999_999, vmId: 1, mode: 'deploy' })).toMatchObject({ status: 'rejected' });

    const m = await eventually(async () => {
      const s = await scrape(manager);
      const since = (name: string, labels: Record<string, string>): number => s(name, labels) - before.manager(name, labels);
      // The driver replies are commands too: wait until all four came back. A command is counted once its
      // outcome is kept (and a refusal recorded in IMGR_REJ), a moment after its sender heard it.
      return since('imgr_commands_total', { source: 'driver', type: 'driver.reply', status: 'accepted' }) >= 4 && since('imgr_command_seconds_count', { type: 'image.acquire' }) >= 7 ? s : undefined;
    }, 'the driver replies counted');
    const moved = (name: string, labels: Record<string, string>): number => m(name, labels) - before.manager(name, labels);
    expect(moved('imgr_commands_total', { source: 'public', type: 'datastore.create', status: 'accepted' })).toBe(2);
    expect(moved('imgr_commands_total', { source: 'public', type: 'image.allocate', status: 'accepted' })).toBe(4);
    expect(moved('imgr_commands_total', { source: 'public', type: 'image.acquire', status: 'accepted' })).toBe(5);
    expect(moved('imgr_commands_total', { source: 'public', type: 'image.release', status: 'accepted' })).toBe(5);
    expect(moved('imgr_commands_total', { source: 'public', type: 'image.acquire', status: 'rejected' })).toBe(2);
    expect(moved('imgr_command_seconds_count', { type: 'image.acquire' })).toBe(7);
    // A decision per command the machines decided; a commit per accepted one.
    expect(moved('imgr_decision_seconds_count', { aggregate: 'image' })).toBeGreaterThanOrEqual(4 + 10 + 4);
    expect(moved('imgr_commit_seconds_count', { aggregate: 'image' })).toBeGreaterThanOrEqual(4 + 10 + 4);
    expect(moved('imgr_append_conflicts_total', { aggregate: 'image' })).toBe(0);
    expect(moved('imgr_reactions_total', { reactor: 'imgr-dispatch' })).toBeGreaterThan(0);
    expect(m('imgr_parked_commits_total', { reactor: 'imgr-dispatch' })).toBe(0);
    // The durables' backlogs are reported (and are drained once the load is done).
    // One manager holds every command partition; each partition's durable is reported, drained.
    expect(m('imgr_partitions_held')).toBe(DEFAULT_PARTITIONS);
    // Holding every partition, it keeps every image resident: the four registered here, none known only as foreign.
    expect(moved('imgr_images_known', { tier: 'resident' })).toBe(4);
    expect(m('imgr_images_known', { tier: 'foreign' })).toBe(0);
    for (let p = 0; p < DEFAULT_PARTITIONS; p++) {
      expect(m('imgr_consumer_pending', { stream: 'IMGR_CMD', durable: `imgr-intake-p${p}` })).toBe(0);
      expect(m('imgr_consumer_ack_pending', { stream: 'IMGR_CMD', durable: `imgr-intake-p${p}` })).toBe(0);
    }
    // The reactors read the log through the host's tail: how far behind each is, and none is.
    expect(m('imgr_log_behind_commits', { follower: 'reactor imgr-dispatch' })).toBe(0);
    expect(m('imgr_log_behind_commits', { follower: 'reactor imgr-process' })).toBe(0);
    expect(m('imgr_process_resident_memory_bytes')).toBeGreaterThan(0);

    const d = await scrape(drivers);
    const ran = (name: string, labels: Record<string, string>): number => d(name, labels) - before.drivers(name, labels);
    expect(ran('imgr_driver_action_seconds_count', { mad: 'dummy', action: 'CP', result: 'SUCCESS' })).toBe(3);
    expect(ran('imgr_driver_action_seconds_count', { mad: 'fs', action: 'CP', result: 'FAILURE' })).toBe(1);
    expect(ran('imgr_driver_failures_total', { mad: 'fs', action: 'CP' })).toBe(1);
    expect(ran('imgr_driver_failures_total', { mad: 'dummy', action: 'CP' })).toBe(0);
    expect(d('imgr_consumer_pending', { stream: 'IMGR_DRV', durable: 'imgr-drivers' })).toBe(0);

    const p = await eventually(async () => {
      const s = await scrape(projections);
      return s('imgr_log_behind_commits', { follower: 'projections' }) === 0 ? s : undefined;
    }, 'the projections current');
    // Every live commit of the load reached the views and was timed.
    expect(p('imgr_projection_lag_seconds_count') - before.projections('imgr_projection_lag_seconds_count')).toBeGreaterThanOrEqual(2 + 4 + 10 + 4);
  });

  it('is ready while NATS is there, not ready while it is away, and healthy throughout', async () => {
    for (const r of [manager, drivers, projections]) {
      expect(await readyz(r)).toEqual({ status: 200, body: { ready: true, checks: { started: true, [`nats connection (${r.role})`]: true } } });
    }
    const restart = nats.restart({ downMs: 4_000 });
    await eventually(async () => (await readyz(manager)).status === 503, 'the manager not ready while NATS is away');
    expect((await readyz(manager)).body.checks).toEqual({ started: true, 'nats connection (manager)': false });
    expect((await fetch(`${manager.opsUrl}/healthz`)).status).toBe(200);
    await restart;
    for (const r of [manager, drivers, projections]) await eventually(async () => (await readyz(r)).status === 200, `${r.role} ready again`);
    expect((await fetch(`${manager.opsUrl}/nothing`)).status).toBe(404);
  });
});
