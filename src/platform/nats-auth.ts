import { randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ROLES, type Role } from './nats.js';
import type { Principals } from './principals.js';
import { ownQueries } from '../messages/queries.js';
import { META_KEYS } from '../messages/names.js';

/**
 * Credentials and the NATS users block. No password is written in the
 * repository: each user's is random, created at first use in the
 * credentials folder (one 0600 file per user), and nats-server runs with a
 * configuration generated from imgr's nats.conf (the permissions) plus the
 * users of the roles and principals with those passwords.
 */

/**
 * The password of a NATS user: IMGR_NATS_<USER>_PASSWORD, else its file in
 * `dir`. Only whoever writes the server's users creates a missing one
 * (`create`); a client without its credentials is told where they belong.
 */
export function passwordOf(user: string, dir: string, env: NodeJS.ProcessEnv = process.env, create = false): string {
  const given = env[`IMGR_NATS_${user.toUpperCase().replace(/-/g, '_')}_PASSWORD`];
  if (given !== undefined && given !== '') return given;
  const file = join(dir, user);
  try {
    const p = readFileSync(file, 'utf8').trim();
    if (p.length >= 16) return p;
  } catch {
    if (!create) throw new Error(`no NATS credentials for "${user}": set IMGR_NATS_${user.toUpperCase().replace(/-/g, '_')}_PASSWORD or put its password in ${file} (npm start creates them)`);
  }
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const p = randomBytes(24).toString('base64url');
  try {
    writeFileSync(file, `${p}\n`, { mode: 0o600, flag: 'wx' });
    return p;
  } catch {
    // Created by another process in between: use that one.
    return readFileSync(file, 'utf8').trim();
  }
}

/**
 * What auditors and dashboards may publish: reads of the log, the refusals,
 * the parked commits and the views through ephemeral consumers and direct
 * gets, and their own queries. They cannot touch a work queue, bind to or
 * pull from a durable, delete a consumer, or write.
 */
const readerPublish = (user: string): string =>
  `{ allow: ${JSON.stringify([
    ownQueries(user),
    '$JS.API.INFO',
    '$JS.API.STREAM.INFO.*',
    '$JS.API.STREAM.MSG.GET.*',
    '$JS.API.DIRECT.GET.>',
    '$JS.API.CONSUMER.CREATE.*',
    '$JS.API.CONSUMER.CREATE.*.>',
    '$JS.API.CONSUMER.INFO.*.*',
    '$JS.API.CONSUMER.MSG.NEXT.*.*',
    '$JS.FC.>',
  ])}, deny: ${JSON.stringify(READER_DENY)} }`;

const READER_DENY = [
  ...['IMGR_CMD', 'IMGR_INT', 'IMGR_REP', 'IMGR_DRV'].flatMap((s) => [`$JS.API.CONSUMER.*.${s}`, `$JS.API.CONSUMER.*.${s}.>`, `$JS.API.CONSUMER.MSG.NEXT.${s}.*`]),
  ...['imgr-dispatch', 'imgr-process'].flatMap((d) => [`$JS.API.CONSUMER.CREATE.IMGR_EVT.${d}`, `$JS.API.CONSUMER.CREATE.IMGR_EVT.${d}.>`, `$JS.API.CONSUMER.MSG.NEXT.IMGR_EVT.${d}`]),
  '$JS.API.CONSUMER.DURABLE.>',
  ...['IMGR_CMD', 'IMGR_INT', 'IMGR_REP', 'IMGR_DRV'].flatMap((s) => [`$JS.API.STREAM.MSG.GET.${s}`, `$JS.API.DIRECT.GET.${s}`, `$JS.API.DIRECT.GET.${s}.>`]),
];

/** The permissions each role has: a variable of nats.conf, or generated where they name the user. */
const ROLE_PERMISSIONS: Record<Exclude<Role, 'service'>, string> = {
  manager: '$MANAGER',
  drivers: '$DRIVERS',
  responder: '$RESPONDER',
  auditor: `{ publish: ${readerPublish('auditor')}, subscribe: ["_INBOX.auditor.>", "imgr.evt.>"] }`,
  dashboard: `{ publish: ${readerPublish('dashboard')}, subscribe: ["_INBOX.dashboard.>", "imgr.evt.>"] }`,
};

/**
 * What every principal may publish besides its own commands and queries:
 * the two imgr_meta keys a client seals secrets with, each by its literal
 * name. A direct get is answered for a wildcard subject too (the last
 * message of any key), so no pattern is granted: a principal reads no other
 * key (not the principals, counters or positions), no outcome (it asks the
 * manager for its own: imgr.query.<name>.outcome) and no view (it asks, and
 * sees what it may USE).
 */
const PRINCIPAL_PUBLISH = [
  '$JS.API.INFO',
  '$JS.API.STREAM.INFO.KV_imgr_meta',
  ...[META_KEYS.publicKey, META_KEYS.secretAttributes].map((k) => `$JS.API.DIRECT.GET.KV_imgr_meta.$KV.imgr_meta.${k}`),
];

/**
 * A principal publishes commands and queries only under its own name and
 * reads only its own inbox: the raw log (imgr.evt.>) is for roles, since a
 * principal sees only what it may USE.
 */
const principalPermissions = (name: string): string =>
  `{ publish: ${JSON.stringify([`imgr.cmd.${name}.>`, ownQueries(name), ...PRINCIPAL_PUBLISH])}, subscribe: ${JSON.stringify([`_INBOX.${name}.>`])} }`;

const quote = (s: string): string => JSON.stringify(s);

/** The `authorization { users: […] }` block for the roles and the principals. */
export function usersBlock(principals: Principals, dir: string, env: NodeJS.ProcessEnv = process.env): string {
  const lines: string[] = [];
  for (const role of ROLES) {
    if (role === 'service') continue;
    lines.push(`    { user: ${quote(role)}, password: ${quote(passwordOf(role, dir, env, true))}, permissions: ${ROLE_PERMISSIONS[role]} }`);
  }
  for (const name of Object.keys(principals)) {
    lines.push(`    { user: ${quote(name)}, password: ${quote(passwordOf(name, dir, env, true))}, permissions: ${principalPermissions(name)} }`);
  }
  return `authorization {\n  users: [\n${lines.join('\n')}\n  ]\n}\n`;
}

/**
 * Writes the configuration nats-server runs with: imgr's nats.conf (ports,
 * JetStream, permissions) followed by the generated users (0600: it holds
 * passwords).
 */
export function writeServerConfig(natsConf: string, principals: Principals, dir: string, out: string, env: NodeJS.ProcessEnv = process.env): string {
  const base = readFileSync(natsConf, 'utf8');
  writeFileSync(out, `${base}\n# Generated by imgr from the roles and principals; passwords in ${dir}.\n${usersBlock(principals, dir, env)}`, { mode: 0o600 });
  return out;
}
