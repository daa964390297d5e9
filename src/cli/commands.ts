import { parseArgs, type ParseArgsConfig } from 'node:util';
import { setTimeout as sleep } from 'node:timers/promises';
import { NoRespondersError, RequestError, type NatsConnection } from '@nats-io/transport-node';
import type { ImgrClient } from '../client/index.js';
import type { CommandInput, Outcome } from '../messages/wire.js';
import type { ImageView } from '../messages/image-record.js';
import type { DatastoreView } from '../messages/datastore.js';
import { historyOf, imageAt, datastoreAt, exportNdjson } from '../audit/history.js';
import { subjects } from '../messages/wire.js';
import { listParked } from '../audit/parked.js';
import { PRINCIPAL_COMMANDS } from './principal-commands.js';
import { SECRETS_COMMANDS } from './secrets-commands.js';
import { verifyLog } from '../audit/verify.js';
import { CliError, EXIT, fields, table } from './output.js';
import { parseTemplate, templateFile } from './template.js';
import { REBUILD_PROGRESS, REBUILD_SUBJECT, RebuildProgressSchema, RebuildResultSchema } from '../projections/service.js';

export interface Result {
  readonly human: string;
  readonly json: unknown;
  /** Output that is printed as is in both modes. */
  readonly raw?: string;
}
type Options = NonNullable<ParseArgsConfig['options']>;
type Values = Record<string, string | boolean | undefined>;

/** What a command gets besides its arguments. */
export interface Context {
  readonly wait: boolean;
  readonly progress: (s: string) => void;
  /** A read-only connection for the audit commands (the auditor role reads the log). */
  readonly reader: () => Promise<NatsConnection>;
  /** An operator's administrative connection (projection rebuilds). */
  readonly admin: () => Promise<NatsConnection>;
}

export interface Command {
  readonly name: string;
  readonly usage: string;
  readonly summary: string;
  readonly example: string;
  readonly options: Options;
  run(c: ImgrClient, args: string[], v: Values, x: Context): Promise<Result>;
}

const integer =
  (pattern: RegExp) =>
  (s: string | undefined, what: string): number => {
    if (s === undefined || !pattern.test(s)) throw new CliError(`${what} must be a number, got ${JSON.stringify(s ?? '')}`, EXIT.usage);
    return Number(s);
  };
const int = integer(/^\d+$/);
const signedInt = integer(/^-?\d+$/);
const arg = (args: string[], i: number, what: string): string => {
  const a = args[i];
  if (a === undefined) throw new CliError(`missing ${what}`, EXIT.usage);
  return a;
};
const str = (v: Values, k: string): string | undefined => (typeof v[k] === 'string' ? v[k] : undefined);

/** Sends a command; a refusal becomes exit code 2 with the manager's text. */
async function send(c: ImgrClient, cmd: CommandInput): Promise<Extract<Outcome, { status: 'accepted' }>> {
  const o = await c.send(cmd);
  if (o.status === 'rejected') throw new CliError(`${o.message} (${o.code})`, EXIT.rejected);
  return o;
}

const BUSY = new Set(['LOCKED', 'LOCKED_USED', 'LOCKED_USED_PERS', 'DELETE']);

/** --wait: follows an image until no driver operation runs on it any more. */
async function follow(c: ImgrClient, id: number, progress: (s: string) => void): Promise<ImageView | null> {
  for (let n = 0; ; n++) {
    const v = await c.image(id);
    if (v === null || !BUSY.has(v.state)) return v;
    progress(`image ${id}: ${v.state}${v.pending ? ` (${v.pending.action})` : ''}`);
    await sleep(Math.min(100 * (n + 1), 1000));
  }
}

async function acceptedImage(c: ImgrClient, o: Extract<Outcome, { status: 'accepted' }>, wait: boolean, progress: (s: string) => void): Promise<Result> {
  const view = wait ? await follow(c, o.id, progress) : await c.image(o.id);
  // Waited for and gone: the image was deleted.
  const state = view?.state ?? (wait ? 'REMOVED' : o.state);
  if (wait && state === 'ERROR') throw new CliError(`image ${o.id} ended in ERROR: ${view?.error ?? 'no reason recorded'}`, EXIT.failed, `imgr image show ${o.id}`);
  return { human: `image ${o.id}: ${state}${view?.error ? `\n${view.error}` : ''}`, json: { ...o, state, view } };
}

const imageFields = (v: ImageView): string =>
  fields([
    ['ID', v.id],
    ['NAME', v.name],
    ['OWNER', `${v.uname} (${v.uid}:${v.gid})`],
    ['STATE', v.state],
    ['TYPE', v.type],
    ['PERSISTENT', v.persistent ? 'yes' : 'no'],
    ['DATASTORE', `${v.datastore.name} (${v.datastore.id})`],
    ['SIZE', `${v.size} MB`],
    ['SOURCE', v.source],
    ['PATH', v.path],
    ['FORMAT', v.format],
    ['VMS', v.vms.join(',')],
    ['CLONES', v.clones.join(',')],
    ['SNAPSHOTS', v.snapshots.list.map((s) => s.id).join(',')],
    ['PENDING', v.pending ? `${v.pending.action} ${v.pending.requestId}` : ''],
    ['ERROR', v.error],
  ]);

const isNoProjection = (e: unknown): boolean => e instanceof NoRespondersError || (e instanceof RequestError && e.isNoResponders());

/**
 * How many images a datastore holds, from the projections (the datastore
 * carries no image list); null when no projection answers (the datastore
 * itself is the manager's to show).
 */
const imageCount = async (c: ImgrClient, datastoreId: number): Promise<number | null> => {
  try {
    return (await c.images({ datastoreId, limit: 1 })).total;
  } catch (e) {
    if (isNoProjection(e)) return null;
    throw e;
  }
};

const dsFields = (d: DatastoreView, images: number | null): string =>
  fields([
    ['ID', d.id],
    ['NAME', d.name],
    ['STATE', d.state],
    ['TYPE', d.type],
    ['DS_MAD', d.dsMad],
    ['TM_MAD', d.tmMad],
    ['BASE_PATH', d.basePath],
    ['CAPACITY', `${d.freeMb} MB free of ${d.totalMb} MB (${d.usedMb} MB used)`],
    ['MONITORED', d.monitoredAt === null ? 'never' : new Date(d.monitoredAt).toISOString()],
    ['MONITOR ERROR', d.monitorError],
    ['IMAGES', images ?? undefined],
  ]);

const simple = (name: string, summary: string, type: 'image.enable' | 'image.disable'): Command => ({
  name,
  usage: `image ${name.split(' ')[1] ?? ''} ID`,
  summary,
  example: `imgr ${name} 42`,
  options: {},
  run: async (c, a) => {
    const o = await send(c, { type, imageId: int(a[0], 'ID') });
    return { human: `image ${o.id}: ${o.state}`, json: o };
  },
});

export const COMMANDS: Command[] = [
  {
    name: 'image create',
    usage: 'image create --datastore ID [--name NAME --path PATH --size MB --type TYPE --persistent] [--template FILE] [KEY=VALUE ...]',
    summary: 'register an image from a file, a URL, an existing SOURCE, or as an empty disk',
    example: 'imgr image create --datastore 1 --name ubuntu --path https://example.org/ubuntu.qcow2 --wait',
    options: { datastore: { type: 'string' }, name: { type: 'string' }, path: { type: 'string' }, size: { type: 'string' }, type: { type: 'string' }, persistent: { type: 'boolean' }, template: { type: 'string' } },
    run: async (c, a, v, { wait, progress }) => {
      const tpl: Record<string, string> = { ...(str(v, 'template') ? templateFile(str(v, 'template') ?? '') : {}), ...parseTemplate(a.join('\n'), 'arguments') };
      for (const [k, key] of [['name', 'NAME'], ['path', 'PATH'], ['size', 'SIZE'], ['type', 'TYPE']] as const) {
        const x = str(v, k);
        if (x !== undefined) tpl[key] = x;
      }
      if (v['persistent'] === true) tpl['PERSISTENT'] = 'YES';
      const o = await c.register(int(str(v, 'datastore'), '--datastore'), tpl);
      if (o.status === 'rejected') throw new CliError(`${o.message} (${o.code})`, EXIT.rejected, o.code === 'DS_ERR_NO_SPACE' ? 'imgr datastore monitor <id> shows the free space' : undefined);
      return acceptedImage(c, o, wait, progress);
    },
  },
  {
    name: 'image list',
    usage: 'image list [--state S] [--type T] [--datastore ID] [--owner UID] [--name PREFIX] [--limit N] [--offset N]',
    summary: 'list images (from the projections)',
    example: 'imgr image list --state READY --datastore 1',
    options: { state: { type: 'string' }, type: { type: 'string' }, datastore: { type: 'string' }, owner: { type: 'string' }, name: { type: 'string' }, limit: { type: 'string' }, offset: { type: 'string' } },
    run: async (c, _a, v) => {
      const q: Record<string, string | number> = {};
      if (str(v, 'state')) q['state'] = (str(v, 'state') ?? '').toUpperCase();
      if (str(v, 'type')) q['type'] = (str(v, 'type') ?? '').toUpperCase();
      if (str(v, 'datastore')) q['datastoreId'] = int(str(v, 'datastore'), '--datastore');
      if (str(v, 'owner')) q['uid'] = int(str(v, 'owner'), '--owner');
      if (str(v, 'name')) q['namePrefix'] = str(v, 'name') ?? '';
      if (str(v, 'limit')) q['limit'] = int(str(v, 'limit'), '--limit');
      if (str(v, 'offset')) q['offset'] = int(str(v, 'offset'), '--offset');
      const r = await c.images(q);
      const rows = r.items.map((i) => [i.id, i.uname, i.name, i.datastore.name, i.type, `${i.size}M`, i.state, i.vms.length]);
      return { human: `${table(['ID', 'USER', 'NAME', 'DATASTORE', 'TYPE', 'SIZE', 'STATE', 'VMS'], rows)}\n${r.items.length} of ${r.total}${r.nextOffset !== null ? ` (more: --offset ${r.nextOffset})` : ''}`, json: r };
    },
  },
  {
    name: 'image show',
    usage: 'image show ID',
    summary: 'one image in detail',
    example: 'imgr image show 42',
    options: {},
    run: async (c, a) => {
      const id = int(a[0], 'ID');
      const v = await c.image(id);
      if (v === null) throw new CliError(`image ${id} does not exist`, EXIT.rejected, 'imgr image list');
      return { human: imageFields(v), json: v };
    },
  },
  {
    name: 'image delete',
    usage: 'image delete ID [--force]',
    summary: 'delete an image (--force for a locked one)',
    example: 'imgr image delete 42 --wait',
    options: { force: { type: 'boolean' } },
    run: async (c, a, v, { wait, progress }) => acceptedImage(c, await send(c, { type: 'image.delete', imageId: int(a[0], 'ID'), force: v['force'] === true }), wait, progress),
  },
  simple('image enable', 'enable a disabled or failed image', 'image.enable'),
  simple('image disable', 'disable an image', 'image.disable'),
  ...(['persistent', 'nonpersistent'] as const).map(
    (p): Command => ({
      name: `image ${p}`,
      usage: `image ${p} ID`,
      summary: `make an image ${p === 'persistent' ? 'persistent' : 'non-persistent'}`,
      example: `imgr image ${p} 42`,
      options: {},
      run: async (c, a) => {
        const o = await send(c, { type: 'image.setPersistent', imageId: int(a[0], 'ID'), persistent: p === 'persistent' });
        return { human: `image ${o.id}: ${p}`, json: o };
      },
    }),
  ),
  {
    name: 'image chtype',
    usage: 'image chtype ID TYPE',
    summary: 'change the type of an image',
    example: 'imgr image chtype 42 DATABLOCK',
    options: {},
    run: async (c, a) => {
      const o = await send(c, { type: 'image.chtype', imageId: int(a[0], 'ID'), imageType: arg(a, 1, 'TYPE') });
      return { human: `image ${o.id}: ${arg(a, 1, 'TYPE').toUpperCase()}`, json: o };
    },
  },
  {
    name: 'image clone',
    usage: 'image clone ID NAME [--datastore ID]',
    summary: 'copy an image into a new one',
    example: 'imgr image clone 42 ubuntu-copy --wait',
    options: { datastore: { type: 'string' } },
    run: async (c, a, v, { wait, progress }) => {
      const origin = int(a[0], 'ID');
      const view = await c.image(origin);
      if (view === null) throw new CliError(`image ${origin} does not exist`, EXIT.rejected);
      const datastoreId = str(v, 'datastore') ? int(str(v, 'datastore'), '--datastore') : view.datastore.id;
      // One command: the new image, its origin held and its space reserved commit together, or nothing does.
      const o = await c.clone(origin, arg(a, 1, 'NAME'), datastoreId);
      if (o.status === 'rejected') throw new CliError(`${o.message} (${o.code})`, EXIT.rejected);
      return acceptedImage(c, o, wait, progress);
    },
  },
  ...(['delete', 'revert', 'flatten'] as const).map(
    (op): Command => ({
      name: `image snapshot-${op}`,
      usage: `image snapshot-${op} ID SNAPSHOT`,
      summary: `${op} an image snapshot`,
      example: `imgr image snapshot-${op} 42 0 --wait`,
      options: {},
      run: async (c, a, _v, { wait, progress }) => {
        const type = op === 'delete' ? 'image.snapshotDelete' : op === 'revert' ? 'image.snapshotRevert' : 'image.snapshotFlatten';
        return acceptedImage(c, await send(c, { type, imageId: int(a[0], 'ID'), snapshotId: signedInt(a[1], 'SNAPSHOT') }), wait, progress);
      },
    }),
  ),
  {
    name: 'image backup',
    usage: 'image backup ID --datastore BACKUP_DS [--vm N] [--incremental] [--into BACKUP_IMAGE]',
    summary: 'back up an image into a backup datastore (a new backup image, or --into a chain)',
    example: 'imgr image backup 42 --datastore 100 --incremental --wait',
    options: { datastore: { type: 'string' }, vm: { type: 'string' }, incremental: { type: 'boolean' }, into: { type: 'string' } },
    run: async (c, a, v, { wait, progress }) => {
      const into = str(v, 'into');
      const backupImageId = into !== undefined ? int(into, '--into') : await c.nextId('image');
      await send(c, {
        type: 'image.backup',
        imageId: int(a[0], 'ID'),
        backupDatastoreId: int(str(v, 'datastore'), '--datastore'),
        backupImageId,
        chain: into !== undefined,
        incremental: v['incremental'] === true,
        vmId: str(v, 'vm') ? int(str(v, 'vm'), '--vm') : 0,
      });
      if (!wait) return { human: `backup requested into backup image ${backupImageId}`, json: { backupImageId } };
      for (let n = 0; n < 600; n++) {
        const b = await c.image(backupImageId);
        if (b !== null && (into === undefined || b.increments.length > 0) && !BUSY.has(b.state)) return { human: `backup image ${backupImageId}: ${b.state}, ${b.size} MB`, json: b };
        progress(`backing up into image ${backupImageId}`);
        await sleep(500);
      }
      throw new CliError(`backup image ${backupImageId} did not appear`, EXIT.timeout, `imgr history image ${a[0] ?? ''}`);
    },
  },
  {
    name: 'image restore',
    usage: 'image restore BACKUP_IMAGE --datastore ID [--name NAME] [--increment N] [--disk N]',
    summary: 'restore a backup into images of an image datastore',
    example: 'imgr image restore 77 --datastore 1 --name restored',
    options: { datastore: { type: 'string' }, name: { type: 'string' }, increment: { type: 'string' }, disk: { type: 'string' } },
    run: async (c, a, v) => {
      const o = await send(c, {
        type: 'image.restore',
        imageId: int(a[0], 'BACKUP_IMAGE'),
        datastoreId: int(str(v, 'datastore'), '--datastore'),
        options: {
          name: str(v, 'name') ?? '',
          incrementId: str(v, 'increment') ? int(str(v, 'increment'), '--increment') : null,
          diskId: str(v, 'disk') ? int(str(v, 'disk'), '--disk') : null,
        },
      });
      return { human: `restore of backup image ${o.id} requested; the restored images appear in datastore ${str(v, 'datastore') ?? ''}`, json: o };
    },
  },
  ...(['acquire', 'release'] as const).map(
    (op): Command => ({
      name: `image ${op}`,
      usage: op === 'acquire' ? 'image acquire ID --vm N [--attach]' : 'image release ID --vm N [--failed]',
      summary: op === 'acquire' ? 'take an image for a VM (the VM service\'s call)' : 'give an image back from a VM',
      example: `imgr image ${op} 42 --vm 7`,
      options: { vm: { type: 'string' }, attach: { type: 'boolean' }, failed: { type: 'boolean' } },
      run: async (c, a, v) => {
        const imageId = int(a[0], 'ID');
        const vmId = int(str(v, 'vm'), '--vm');
        const o = await send(
          c,
          op === 'acquire'
            ? { type: 'image.acquire', imageId, vmId, mode: v['attach'] === true ? 'attach' : 'deploy' }
            : { type: 'image.release', imageId, vmId, failed: v['failed'] === true },
        );
        return { human: `image ${o.id}: ${o.state}`, json: o };
      },
    }),
  ),
  {
    name: 'datastore create',
    usage: 'datastore create --name NAME [--type IMAGE_DS|FILE_DS|BACKUP_DS|SYSTEM_DS] [--ds-mad M] [--tm-mad M] [--template FILE] [KEY=VALUE ...]',
    summary: 'create a datastore',
    example: 'imgr datastore create --name backups --type BACKUP_DS --ds-mad restic RESTIC_PASSWORD=secret',
    options: { name: { type: 'string' }, type: { type: 'string' }, 'ds-mad': { type: 'string' }, 'tm-mad': { type: 'string' }, template: { type: 'string' } },
    run: async (c, a, v) => {
      const tpl: Record<string, string> = { ...(str(v, 'template') ? templateFile(str(v, 'template') ?? '') : {}), ...parseTemplate(a.join('\n'), 'arguments') };
      for (const [k, key] of [['name', 'NAME'], ['type', 'TYPE'], ['ds-mad', 'DS_MAD'], ['tm-mad', 'TM_MAD']] as const) {
        const x = str(v, k);
        if (x !== undefined) tpl[key] = x;
      }
      const id = await c.nextId('datastore');
      const o = await send(c, { type: 'datastore.create', datastoreId: id, template: tpl });
      return { human: `datastore ${o.id}: ${o.state}`, json: o };
    },
  },
  {
    name: 'datastore list',
    usage: 'datastore list',
    summary: 'list datastores with their capacity',
    example: 'imgr datastore list',
    options: {},
    run: async (c) => {
      const items = await c.datastores();
      const rows = await Promise.all(items.map(async (d) => [d.id, d.name, d.type, d.dsMad, `${d.freeMb}/${d.totalMb}M`, (await imageCount(c, d.id)) ?? '-', d.state]));
      return { human: table(['ID', 'NAME', 'TYPE', 'DS_MAD', 'FREE/TOTAL', 'IMAGES', 'STATE'], rows), json: items };
    },
  },
  {
    name: 'datastore show',
    usage: 'datastore show ID',
    summary: 'one datastore in detail, with its last monitor',
    example: 'imgr datastore show 1',
    options: {},
    run: async (c, a) => {
      const id = int(a[0], 'ID');
      const d = await c.datastore(id);
      if (d === null) throw new CliError(`datastore ${id} does not exist`, EXIT.rejected, 'imgr datastore list');
      return { human: dsFields(d, await imageCount(c, id)), json: d };
    },
  },
  {
    name: 'datastore monitor',
    usage: 'datastore monitor ID',
    summary: 'the last capacity probe of a datastore and its error, if any',
    example: 'imgr datastore monitor 1',
    options: {},
    run: async (c, a) => {
      const id = int(a[0], 'ID');
      const d = await c.datastore(id);
      if (d === null) throw new CliError(`datastore ${id} does not exist`, EXIT.rejected, 'imgr datastore list');
      const m = { totalMb: d.totalMb, freeMb: d.freeMb, usedMb: d.usedMb, monitoredAt: d.monitoredAt, monitorError: d.monitorError };
      return {
        human: fields([
          ['TOTAL', `${d.totalMb} MB`],
          ['FREE', `${d.freeMb} MB`],
          ['USED', `${d.usedMb} MB`],
          ['MONITORED', d.monitoredAt === null ? 'never' : new Date(d.monitoredAt).toISOString()],
          ['ERROR', d.monitorError],
        ]),
        json: m,
      };
    },
  },
  ...(['enable', 'disable', 'delete'] as const).map(
    (op): Command => ({
      name: `datastore ${op}`,
      usage: `datastore ${op} ID`,
      summary: `${op} a datastore`,
      example: `imgr datastore ${op} 100`,
      options: {},
      run: async (c, a) => {
        const type = op === 'enable' ? 'datastore.enable' : op === 'disable' ? 'datastore.disable' : 'datastore.delete';
        const o = await send(c, { type, datastoreId: int(a[0], 'ID') });
        return { human: `datastore ${o.id}: ${o.state}`, json: o };
      },
    }),
  ),
  {
    name: 'history',
    usage: 'history image|datastore ID',
    summary: 'every fact and refusal of an image or datastore: when, who, what, why',
    example: 'imgr history image 42',
    options: {},
    run: async (_c, a, _v, x) => {
      const kind = arg(a, 0, 'image or datastore');
      if (kind !== 'image' && kind !== 'datastore') throw new CliError('history needs "image" or "datastore"', EXIT.usage);
      const h = await historyOf(await x.reader(), kind, int(a[1], 'ID'));
      const rows = h.map((e) => [e.seq, new Date(e.at).toISOString(), e.actor ? `${e.actor.name}/${e.actor.service}` : '-', e.kind === 'rejected' ? `REFUSED ${e.what}` : e.what, e.state ?? '-', e.why]);
      return { human: table(['SEQ', 'WHEN', 'WHO', 'WHAT', 'STATE', 'WHY'], rows), json: h };
    },
  },
  {
    name: 'at',
    usage: 'at image|datastore ID (--seq N | --time ISO-8601)',
    summary: 'time travel: the view as of a log sequence or a time',
    example: 'imgr at image 42 --time 2026-11-25T10:00:00Z',
    options: { seq: { type: 'string' }, time: { type: 'string' } },
    run: async (_c, a, v, x) => {
      const kind = arg(a, 0, 'image or datastore');
      const id = int(a[1], 'ID');
      const time = str(v, 'time');
      const until = str(v, 'seq') !== undefined ? { seq: int(str(v, 'seq'), '--seq') } : { at: time !== undefined ? Date.parse(time) : Date.now() };
      if ('at' in until && Number.isNaN(until.at)) throw new CliError(`--time ${time ?? ''} is not a date`, EXIT.usage);
      const nc = await x.reader();
      const view = kind === 'image' ? await imageAt(nc, id, until) : kind === 'datastore' ? await datastoreAt(nc, id, until) : undefined;
      if (view === undefined) throw new CliError('at needs "image" or "datastore"', EXIT.usage);
      if (view === null) return { human: `${kind} ${id} did not exist then`, json: null };
      return { human: 'persistent' in view ? imageFields(view) : dsFields(view, null), json: view };
    },
  },
  {
    name: 'audit verify',
    usage: 'audit verify',
    summary: 'check the hash chain of the whole event log',
    example: 'imgr audit verify',
    options: {},
    run: async (_c, _a, _v, x) => {
      const r = await verifyLog(await x.reader());
      if (!r.ok) {
        const lines = r.breaks.map((b) => `  seq ${b.seq} ${b.subject}: ${b.reason}`).join('\n');
        throw new CliError(`the log was altered: ${r.breaks.length} break(s)\n${lines}`, EXIT.failed);
      }
      return { human: `log intact: ${r.commits} commits of ${r.aggregates} aggregates`, json: r };
    },
  },
  {
    name: 'parked',
    usage: 'parked',
    summary: 'commits a reactor gave up on (dead letters), with why',
    example: 'imgr parked',
    options: {},
    run: async (_c, _a, _v, x) => {
      const items = await listParked(await x.reader());
      const rows = items.map((p) => [p.seq, p.reactor, p.subject, p.attempts, new Date(p.at).toISOString(), p.error]);
      return { human: items.length === 0 ? 'nothing parked' : table(['SEQ', 'REACTOR', 'SUBJECT', 'TRIES', 'AT', 'WHY'], rows), json: items };
    },
  },
];

COMMANDS.push(...PRINCIPAL_COMMANDS);
COMMANDS.push(...SECRETS_COMMANDS);

COMMANDS.push({
  name: 'export',
  usage: 'export [image|datastore ID]',
  summary: 'the event log (or one aggregate) as NDJSON, one commit per line',
  example: 'imgr export image 42 > image-42.ndjson',
  options: {},
  run: async (_c, a, _v, x) => {
    const kind = a[0];
    if (kind !== undefined && kind !== 'image' && kind !== 'datastore') throw new CliError('export takes nothing, or "image ID" or "datastore ID"', EXIT.usage);
    const filter = kind === undefined ? subjects.events : subjects.event(kind, int(a[1], 'ID'));
    const lines: string[] = [];
    for await (const line of exportNdjson(await x.reader(), filter)) lines.push(line);
    const text = lines.join('');
    // NDJSON is already machine-readable: --json prints the same lines.
    return { human: text.endsWith('\n') ? text.slice(0, -1) : text, json: undefined, raw: text };
  },
});

COMMANDS.push({
  name: 'projections rebuild',
  usage: 'projections rebuild',
  summary: 'rebuild the views from the whole log into new buckets, check them, and switch readers over',
  example: 'imgr projections rebuild',
  options: {},
  run: async (_c, _a, _v, x) => {
    const nc = await x.admin();
    const progress = nc.subscribe(REBUILD_PROGRESS, {
      callback: (err, m) => {
        if (err) return;
        const p = RebuildProgressSchema.safeParse(m.json());
        if (!p.success) return;
        const { applied, target } = p.data;
        const width = 30;
        const done = target === 0 ? width : Math.round((width * Math.min(applied, target)) / target);
        x.progress(`[${'#'.repeat(done)}${'.'.repeat(width - done)}] ${applied}/${target} commits`);
      },
    });
    try {
      const m = await nc.request(REBUILD_SUBJECT, '', { timeout: 30 * 60_000 });
      const r = RebuildResultSchema.parse(m.json());
      if (!r.ok) throw new CliError(`rebuild failed: ${r.error}`, EXIT.failed);
      return { human: `views rebuilt into generation ${r.generation} up to commit ${r.seq}: ${r.images} images, ${r.datastores} datastores; ${r.compared} views equal to the live ones; readers switched`, json: r };
    } catch (e) {
      if (isNoProjection(e)) {
        throw new CliError('no projections service is running', EXIT.connection, 'start imgr with `npm start`');
      }
      throw e;
    } finally {
      progress.unsubscribe();
    }
  },
});

export function parse(cmd: Command, argv: string[]): { args: string[]; values: Values } {
  try {
    const r = parseArgs({ args: argv, options: cmd.options, allowPositionals: true, strict: true });
    return { args: r.positionals, values: r.values as Values };
  } catch (e) {
    throw new CliError(e instanceof Error ? e.message : String(e), EXIT.usage, `imgr ${cmd.name} --help`);
  }
}
