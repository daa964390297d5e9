/**
 * Every publish grant of every user, walked against everything the server
 * would do with a subject it matches. A wildcard in a grant stands for any
 * token, a stream's or a durable's name included: "$JS.ACK.*.*.IMGR_DRV.>"
 * (meant for the 2.14+ acknowledgement form) matched
 * $JS.ACK.IMGR_CMD.imgr-intake-p0.IMGR_DRV.1.1.0.0, the classic form of an
 * acknowledgement of the command intake's delivery, and the drivers user
 * terminated a principal's command with it.
 *
 * The grants are read from the configuration the server runs with (roles and
 * generated users alike), the streams and durables from the server, so a
 * grant, a user, a stream or a durable added later is walked too. For each
 * grant and each thing the server listens on (a JetStream API verb on each
 * stream and durable, each durable's acknowledgements in both forms, each
 * stream's subjects, each user's inbox and queries, a direct get with a
 * wildcard subject), a subject both match is looked for; what a user can
 * reach must be in its row of the README's roles table below. Then the
 * server is asked: every wildcard of every grant is given every stream
 * name, durable name, user name and `>`, and the acknowledgements among them
 * are sent as +TERM for pending deliveries of every durable: none is
 * touched but the drivers' own.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { AckPolicy, jetstream, jetstreamManager, type JetStreamManager } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import { TestNats, TEST_PRINCIPALS } from '../support/nats.js';
import { eventually } from '../support/eventually.js';
import { Manager } from '../../src/manager.js';
import { silentLogger } from '../../src/platform/logger.js';
import { ROLES } from '../../src/platform/nats.js';
import { BUCKETS, DRIVERS_DURABLE, META_KEYS, STREAMS } from '../../src/messages/names.js';
import { Kvm } from '@nats-io/kv';

// --- subjects as the server matches them

const tokens = (s: string): string[] => s.split('.');
/** Whether `pattern` (with * and >) matches the literal `subject` (whose * and > are tokens like any other). */
function matches(pattern: string, subject: string): boolean {
  const p = tokens(pattern);
  const s = tokens(subject);
  for (let i = 0; i < p.length; i++) {
    if (p[i] === '>') return s.length > i;
    if (i >= s.length || (p[i] !== '*' && p[i] !== s[i])) return false;
  }
  return p.length === s.length;
}
/** A subject that both patterns match, if any ('x' for a token either leaves free). */
function witness(a: string[], b: string[]): string[] | undefined {
  const concrete = (p: string[]): string[] => p.map((t) => (t === '*' || t === '>' ? 'x' : t));
  if (a.length === 0 || b.length === 0) return a.length === b.length ? [] : undefined;
  const [x = '', ...ra] = a;
  const [y = '', ...rb] = b;
  if (x === '>') return concrete(b);
  if (y === '>') return concrete(a);
  if (x !== '*' && y !== '*' && x !== y) return undefined;
  const rest = witness(ra, rb);
  return rest && [x === '*' ? (y === '*' ? 'x' : y) : x, ...rest];
}

// --- the users' publish permissions, from the configuration the server runs with

interface Publish {
  allow: string[];
  deny: string[];
}
const stripComments = (text: string): string => text.replace(/#[^\n]*/g, '');
/** The list (or the one quoted subject) after the key at `from`. */
function listAt(text: string, from: number): string[] {
  const value = text.slice(text.indexOf(':', from) + 1).trimStart();
  if (value.startsWith('"')) return [JSON.parse(value.slice(0, value.indexOf('"', 1) + 1)) as string];
  const open = text.indexOf('[', from);
  return JSON.parse(text.slice(open, text.indexOf(']', open) + 1).replace(/,\s*\]/, ']')) as string[];
}
/** The publish permission of one `{ publish: …, subscribe: … }` text. */
function publishOf(perm: string): Publish {
  const at = perm.indexOf('publish:');
  if (at < 0) return { allow: [], deny: [] };
  const rest = perm.slice(at + 'publish:'.length).trimStart();
  if (rest.startsWith('[')) return { allow: JSON.parse(rest.slice(0, rest.indexOf(']') + 1)) as string[], deny: [] };
  const block = rest.slice(0, blockEnd(rest, 0) + 1);
  const allow = block.indexOf('allow:');
  const deny = block.indexOf('deny:');
  return { allow: allow < 0 ? [] : listAt(block, allow), deny: deny < 0 ? [] : listAt(block, deny) };
}
function blockEnd(text: string, open: number): number {
  let depth = 0;
  for (let i = text.indexOf('{', open); i < text.length; i++) {
    if (text[i] === '{') depth++;
    else if (text[i] === '}' && --depth === 0) return i;
  }
  throw new Error('unbalanced block');
}
/** Every user of the configuration with its publish permission (a role's variable resolved). */
function usersOf(conf: string): Map<string, Publish> {
  const text = stripComments(conf);
  const users = new Map<string, Publish>();
  for (const m of text.matchAll(/\{ user: "([^"]+)", password: "[^"]*", permissions: /g)) {
    const start = m.index + m[0].length;
    let perm: string;
    if (text[start] === '$') {
      const name = /^\$([A-Z_]+)/.exec(text.slice(start))?.[1] ?? '';
      const def = new RegExp(`^${name}: \\{`, 'm').exec(text);
      if (!def) throw new Error(`no ${name} in the configuration`);
      perm = text.slice(def.index, blockEnd(text, def.index) + 1);
    } else perm = text.slice(start, blockEnd(text, start) + 1);
    users.set(m[1] ?? '', publishOf(perm));
  }
  return users;
}

// --- what the server listens on

interface Target {
  readonly label: string;
  readonly patterns: readonly string[];
}
const WORK_QUEUES = [STREAMS.commands, STREAMS.internal, STREAMS.driver] as string[];
const STREAM_VERBS = ['INFO', 'UPDATE', 'DELETE', 'PURGE', 'MSG.GET', 'MSG.DELETE', 'SNAPSHOT', 'RESTORE', 'LEADER.STEPDOWN', 'PEER.REMOVE'];
const CONSUMER_VERBS = ['INFO', 'DELETE', 'MSG.NEXT', 'PAUSE', 'UNPIN', 'LEADER.STEPDOWN', 'DURABLE.CREATE'];

let nats: TestNats;
let jsm: JetStreamManager;
let users: Map<string, Publish>;
let streams: { name: string; subjects: string[]; durables: string[] }[];
let targets: Target[];

beforeAll(async () => {
  nats = await TestNats.start();
  // A manager makes every durable imgr has, and stops: its deliveries stay pending below.
  const manager = await Manager.start({ servers: nats.url, log: silentLogger(), tickMs: 100 });
  await manager.stop();
  jsm = await jetstreamManager(await nats.connect('manager'));
  streams = [];
  for await (const s of jsm.streams.list()) {
    const durables: string[] = [];
    for await (const c of jsm.consumers.list(s.config.name)) if (c.config.durable_name !== undefined) durables.push(c.config.durable_name);
    streams.push({ name: s.config.name, subjects: s.config.subjects, durables });
  }
  users = usersOf(readFileSync(join(nats.storeDir, 'nats.conf'), 'utf8'));
  targets = [
    ...streams.flatMap((s) => [
      ...STREAM_VERBS.map((v) => ({ label: `stream.${v}:${s.name}`, patterns: [`$JS.API.STREAM.${v}.${s.name}`] })),
      { label: `direct:${s.name}`, patterns: [`$JS.API.DIRECT.GET.${s.name}`, `$JS.API.DIRECT.GET.${s.name}.>`] },
      { label: `consumer.create:${s.name}`, patterns: [`$JS.API.CONSUMER.CREATE.${s.name}`] },
      { label: `write:${s.name}`, patterns: s.subjects },
      ...s.durables.flatMap((d) => [
        ...CONSUMER_VERBS.map((v) => ({ label: `consumer.${v}:${s.name}/${d}`, patterns: [`$JS.API.CONSUMER.${v}.${s.name}.${d}`] })),
        { label: `consumer.CREATE:${s.name}/${d}`, patterns: [`$JS.API.CONSUMER.CREATE.${s.name}.${d}`, `$JS.API.CONSUMER.CREATE.${s.name}.${d}.>`] },
        // The two forms nats-server 2.15 subscribes a consumer's acknowledgements on.
        { label: `ack:${s.name}/${d}`, patterns: [`$JS.ACK.${s.name}.${d}.*.*.*.*.*`, `$JS.ACK.*.*.${s.name}.${d}.*.*.*.*.>`] },
      ]),
    ]),
    ...[...users.keys()].flatMap((u) => [
      { label: `inbox:${u}`, patterns: [`_INBOX.${u}.>`] },
      { label: `query:${u}`, patterns: [`imgr.query.${u}.>`] },
    ]),
  ];
});
afterAll(async () => nats.dispose());

/** What each user may reach: the README's roles table. */
function allowed(user: string, label: string): boolean {
  const [what = '', on = ''] = label.split(':');
  const [stream = '', durable] = on.split('/');
  const storesDriverReplies = streams.find((s) => s.name === stream)?.subjects.some((p) => matches(p, 'imgr.drv-reply.image.1')) === true;
  const storesCommandsOf = (p: string): boolean => streams.find((s) => s.name === stream)?.subjects.some((x) => matches(x, `imgr.cmd.${p}.image.1`)) === true;
  if (user in TEST_PRINCIPALS) {
    // Its own commands and queries; the stream info and two literal keys of imgr_meta (sealing).
    return (what === 'write' && storesCommandsOf(user)) || label === `query:${user}` || label === 'stream.INFO:KV_imgr_meta' || label === 'direct:KV_imgr_meta';
  }
  switch (user) {
    case 'drivers':
      return (
        (what === 'write' && storesDriverReplies) ||
        ['stream.INFO:IMGR_DRV', `consumer.INFO:IMGR_DRV/${DRIVERS_DURABLE}`, `consumer.MSG.NEXT:IMGR_DRV/${DRIVERS_DURABLE}`, `ack:IMGR_DRV/${DRIVERS_DURABLE}`, 'stream.INFO:KV_imgr_meta', 'direct:KV_imgr_meta'].includes(label)
      );
    case 'responder':
      // Answers on inboxes, never the manager's, the driver hosts' or its own.
      return what === 'inbox' && !['manager', 'drivers', 'responder'].includes(on);
    case 'auditor':
    case 'dashboard':
      // Reads of everything but the work queues, through ephemeral consumers; its own queries.
      if (label === `query:${user}` || what === 'stream.INFO') return true;
      if (WORK_QUEUES.includes(stream)) return false;
      if (durable !== undefined) return ['consumer.INFO', 'consumer.MSG.NEXT', 'consumer.CREATE'].includes(what) && !['imgr-dispatch', 'imgr-process'].includes(durable);
      return ['stream.INFO', 'stream.MSG.GET', 'direct', 'direct.wildcard', 'consumer.create'].includes(what);
    default:
      throw new Error(`no row for ${user} in the roles table: add one`);
  }
}

/** What a user's grants reach, each with a subject that shows it. */
function reach(user: string): Map<string, string> {
  const p = users.get(user) ?? { allow: [], deny: [] };
  const reached = new Map<string, string>();
  for (const grant of p.allow)
    for (const t of targets)
      for (const pattern of t.patterns) {
        const w = witness(tokens(grant), tokens(pattern))?.join('.');
        if (w !== undefined && !p.deny.some((d) => matches(d, w))) reached.set(t.label, `${grant} → ${w}`);
      }
  // A direct get answers a wildcard subject with the last message of any key: a grant that lets one through.
  for (const s of streams)
    for (const w of [`$JS.API.DIRECT.GET.${s.name}.>`, ...s.subjects.map((x) => `$JS.API.DIRECT.GET.${s.name}.${x}`)])
      if (/[*>]/.test(w.slice(`$JS.API.DIRECT.GET.${s.name}`.length)) && p.allow.some((g) => matches(g, w)) && !p.deny.some((d) => matches(d, w))) reached.set(`direct.wildcard:${s.name}`, w);
  return reached;
}

/**
 * Every wildcard of every grant given each sensitive value (a stream's,
 * durable's or user's name, `>`), and every two of them a consumer's stream
 * and durable; the wildcards left are filled with 1 (a `>` with one to
 * eight tokens), so an acknowledgement names delivery 1 of stream sequence 1.
 */
function substituted(grant: string): string[] {
  const t = tokens(grant);
  const wild = t.flatMap((x, i) => (x === '*' || x === '>' ? [i] : []));
  const values = ['>', ...streams.flatMap((s) => [s.name, ...s.durables]), ...users.keys()];
  const pairs = streams.flatMap((s) => s.durables.map((d) => [s.name, d] as const));
  const fill = (given: Map<number, string>, k: number): string => t.map((x, i) => given.get(i) ?? (x === '>' ? Array(k).fill('1').join('.') : x === '*' ? '1' : x)).join('.');
  const out = new Set<string>();
  for (let k = 1; k <= 8; k++) {
    for (const i of wild) for (const v of values) out.add(fill(new Map([[i, v]]), k));
    for (const i of wild) for (const j of wild) if (i < j) for (const [stream, durable] of pairs) out.add(fill(new Map([[i, stream], [j, durable]]), k));
  }
  return [...out];
}

const others = (): string[] => [...users.keys()].filter((u) => u !== 'manager' && (users.get(u)?.allow.length ?? 0) > 0);

describe('every grant of every user', () => {
  it('the configuration names every user the server knows, the generated ones too', () => {
    // And the placeholder that admits nobody to anything.
    expect([...users.keys()].sort()).toEqual([...new Set([...ROLES, ...Object.keys(TEST_PRINCIPALS), 'nobody'])].sort());
    expect(users.get('nobody')).toEqual({ allow: [], deny: ['>'] });
    expect(streams.map((s) => s.name)).toEqual(expect.arrayContaining([STREAMS.commands, STREAMS.internal, STREAMS.driver, 'KV_imgr_meta']));
    expect(streams.flatMap((s) => s.durables)).toEqual(expect.arrayContaining(['imgr-intake-p0', 'imgr-intake-internal-p0', DRIVERS_DURABLE]));
  });

  // The manager owns the store (its grants are JetStream's whole API); every other user is walked.
  it.each(ROLES.filter((r) => r !== 'manager').concat(Object.keys(TEST_PRINCIPALS) as never[]).filter((u, i, all) => all.indexOf(u) === i))('%s reaches only what its row of the roles table says', (user) => {
    const beyond = [...reach(user)].filter(([label]) => !allowed(user, label)).map(([label, how]) => `${label} (${how})`);
    expect(beyond).toEqual([]);
  });

  it('the walk finds a door: the acknowledgement grant the drivers user had reaches the command intake', () => {
    const had = { allow: ['$JS.ACK.*.*.IMGR_DRV.>'], deny: [] };
    users.set('drivers-before', had);
    try {
      expect([...reach('drivers-before').keys()]).toContain(`ack:${STREAMS.commands}/imgr-intake-p0`);
    } finally {
      users.delete('drivers-before');
    }
  });

  it('the drivers user reads of imgr_meta only the keys it needs, by their literal subjects: not the principals, not by wildcard or sequence', async () => {
    const meta = await new Kvm(await nats.connect('manager')).open(BUCKETS.meta);
    await meta.put(META_KEYS.publicKey, 'the public key');
    const nc = await nats.connect('drivers');
    const kv = await new Kvm(nc).open(BUCKETS.meta, { allow_direct: true });
    expect((await kv.get(META_KEYS.publicKey))?.string()).toBe('the public key');
    for (const key of ['principals', 'next.image', 'partitions']) await expect(kv.get(key)).rejects.toThrow();
    for (const subject of ['$JS.API.DIRECT.GET.KV_imgr_meta.$KV.imgr_meta.>', '$JS.API.DIRECT.GET.KV_imgr_meta.$KV.imgr_meta.*', '$JS.API.DIRECT.GET.KV_imgr_meta', '$JS.API.STREAM.MSG.GET.KV_imgr_meta']) {
      await expect(nc.request(subject, '{"seq":1}', { timeout: 2_000 })).rejects.toThrow();
    }
  });

  it('no acknowledgement a user may send, with any stream, durable or user name in a wildcard, touches a delivery but the drivers\' own', async () => {
    // One pending delivery on every durable of every stream that holds a message.
    const mgr = await nats.connect('manager');
    const js = jetstream(mgr);
    await jetstream(await nats.connect('alice')).publish('imgr.cmd.alice.image.1', '{}');
    await js.publish('imgr.int.image.1', '{}');
    await js.publish('imgr.drv.dummy.cp', '{}');
    await js.publish('imgr.evt.image.1', '{}');
    const held: { stream: string; durable: string }[] = [];
    for (const s of streams)
      for (const d of s.durables) {
        const c = await js.consumers.get(s.name, d);
        const info = await c.info();
        if (info.num_pending === 0 || info.config.ack_policy === AckPolicy.None) continue;
        const m = await c.next({ expires: 2_000 });
        if (m) held.push({ stream: s.name, durable: d });
      }
    expect(held.map((h) => h.stream)).toEqual(expect.arrayContaining([STREAMS.commands, STREAMS.internal, STREAMS.driver]));
    const pending = async (): Promise<number[]> => Promise.all(held.map(async (h) => (await jsm.consumers.info(h.stream, h.durable)).num_ack_pending));
    const before = await pending();
    expect(before.every((n) => n === 1)).toBe(true);
    const conns = new Map<string, NatsConnection>();
    for (const u of others()) conns.set(u, await nats.connect(u as never));
    let sent = 0;
    for (const [u, nc] of conns)
      for (const grant of users.get(u)?.allow ?? [])
        for (const subject of substituted(grant))
          if (subject.startsWith('$JS.ACK.')) {
            nc.publish(subject, '+TERM');
            sent++;
          }
    for (const nc of conns.values()) await nc.flush();
    expect(sent).toBeGreaterThan(0);
    // The drivers' own acknowledgement, sent last, is taken: the ones before it have been seen.
    const drivers = conns.get('drivers');
    const own = await jetstream(drivers as NatsConnection).consumers.get(STREAMS.driver, DRIVERS_DURABLE);
    await js.publish('imgr.drv.dummy.cp', '{"marker":1}');
    const marker = await eventually(async () => (await own.next({ expires: 1_000 })) ?? undefined, 'a delivery to the drivers');
    await marker.ackAck();
    const after = await pending();
    held.forEach((h, i) => expect({ ...h, pending: after[i] }).toEqual({ ...h, pending: h.stream === STREAMS.driver && h.durable === DRIVERS_DURABLE ? (after[i] ?? 0) : before[i] }));
    expect(after.filter((_, i) => held[i]?.stream !== STREAMS.driver)).toEqual(before.filter((_, i) => held[i]?.stream !== STREAMS.driver));
  });
});
