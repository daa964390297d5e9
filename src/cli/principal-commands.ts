import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { type Command } from './commands.js';
import { CliError, EXIT, table } from './output.js';
import { credentialsDir } from '../platform/nats.js';
import { usersBlock, writeServerConfig } from '../platform/nats-auth.js';
import { reloadCluster, runningNodes } from '../platform/nats-cluster.js';
import { PrincipalNameSchema, PrincipalSchema } from '../platform/principals.js';
import { loadPrincipals, publishPrincipals, savePrincipals } from '../platform/principals-file.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const dataDir = (): string => resolve(process.env['IMGR_DATA_DIR'] ?? resolve(ROOT, '.data'));
const principalsFile = (): string => resolve(dataDir(), 'principals.json');

/**
 * Makes the nats-server that npm start runs (its pid file in the data
 * directory), or the nodes of scripts/cluster.sh, load the new users; a NATS
 * system run by hand gets them with `imgr nats-users`.
 */
function reloadServer(): string {
  const cluster = resolve(dataDir(), 'cluster');
  if (runningNodes(cluster).size > 0) {
    const nodes = reloadCluster({ dir: cluster, principals: loadPrincipals(principalsFile()), credentials: credentialsDir() });
    return `cluster nodes ${nodes.join(', ')} reloaded their users`;
  }
  const configFile = writeServerConfig(resolve(ROOT, 'nats.conf'), loadPrincipals(principalsFile()), credentialsDir(), resolve(dataDir(), 'nats.conf'));
  try {
    const pid = Number(readFileSync(resolve(dataDir(), 'nats.pid'), 'utf8').trim());
    process.kill(pid, 'SIGHUP');
    return `nats-server ${pid} reloaded ${configFile}`;
  } catch {
    return `no nats-server of npm start to reload: give the users of \`imgr nats-users\` to your NATS system`;
  }
}

export const PRINCIPAL_COMMANDS: Command[] = [
  {
    name: 'principal add',
    usage: 'principal add NAME UID GID [--admin] [--delegate]',
    summary: 'add a service principal: its NATS user (password in the credentials folder) and its identity',
    example: 'imgr principal add portal 10 100 --delegate',
    options: { admin: { type: 'boolean' }, delegate: { type: 'boolean' } },
    run: async (_c, a, v, x) => {
      const name = PrincipalNameSchema.safeParse(a[0]);
      if (!name.success) throw new CliError(`NAME ${name.error.issues[0]?.message ?? 'is invalid'}`, EXIT.usage);
      const [uid, gid] = [a[1], a[2]];
      const p = PrincipalSchema.safeParse({ uid: Number(uid), gid: Number(gid), admin: v['admin'] === true, delegate: v['delegate'] === true });
      if (!p.success || uid === undefined || gid === undefined || !/^\d+$/.test(uid) || !/^\d+$/.test(gid)) throw new CliError('UID and GID must be numbers', EXIT.usage);
      const all = { ...loadPrincipals(principalsFile()), [name.data]: p.data };
      savePrincipals(principalsFile(), all);
      await publishPrincipals(await x.admin(), all);
      const reloaded = reloadServer();
      const out = { principal: name.data, ...p.data, credentials: resolve(credentialsDir(), name.data), reloaded };
      return { human: `principal ${name.data} (uid ${p.data.uid}, gid ${p.data.gid}${p.data.admin ? ', admin' : ''}${p.data.delegate ? ', delegating' : ''}); password in ${out.credentials}; ${reloaded}`, json: out };
    },
  },
  {
    name: 'principal list',
    usage: 'principal list',
    summary: 'the principals and who each acts as',
    example: 'imgr principal list',
    options: {},
    run: () => {
      const all = loadPrincipals(principalsFile());
      const rows = Object.entries(all).map(([n, p]) => [n, p.uid, p.gid, p.admin ? 'yes' : 'no', p.delegate ? 'yes' : 'no']);
      return Promise.resolve({ human: table(['NAME', 'UID', 'GID', 'ADMIN', 'DELEGATES'], rows), json: all });
    },
  },
  {
    name: 'nats-users',
    usage: 'nats-users',
    summary: "the authorization block of every role and principal, for a NATS system you run yourself",
    example: 'imgr nats-users >> my-nats.conf',
    options: {},
    run: () => {
      const block = usersBlock(loadPrincipals(principalsFile()), credentialsDir());
      return Promise.resolve({ human: block, json: { block }, raw: block });
    },
  },
];
