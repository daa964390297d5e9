import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { type Command } from './commands.js';
import { CliError, EXIT, table } from './output.js';
import { credentialsDir } from '../platform/nats.js';
import { usersBlock, writeServerConfig } from '../platform/nats-auth.js';
import { reloadCluster, runningNodes } from '../platform/nats-cluster.js';
import { PrincipalNameSchema, PrincipalSchema, formatRanges, parseRanges, type IdRange, type Principal, type Principals } from '../platform/principals.js';
import { loadPrincipals, publishPrincipals, savePrincipals } from '../platform/principals-file.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const dataDir = (): string => resolve(process.env['IMGR_DATA_DIR'] ?? resolve(ROOT, '.data'));
const principalsFile = (): string => resolve(dataDir(), 'principals.json');

/** The principals file, or the CLI's refusal naming each entry it cannot take (an inconsistent grant is never guessed at). */
function principals(o: { replacing?: string } = {}): Principals {
  try {
    return loadPrincipals(principalsFile(), o);
  } catch (e) {
    throw new CliError(e instanceof Error ? e.message : String(e), EXIT.failed);
  }
}

/**
 * Makes the nats-server that npm start runs (its pid file in the data
 * directory), or the nodes of scripts/cluster.sh, load the new users; a NATS
 * system run by hand gets them with `imgr nats-users`.
 */
function reloadServer(): string {
  const cluster = resolve(dataDir(), 'cluster');
  if (runningNodes(cluster).size > 0) {
    const nodes = reloadCluster({ dir: cluster, principals: principals(), credentials: credentialsDir() });
    return `cluster nodes ${nodes.join(', ')} reloaded their users`;
  }
  const configFile = writeServerConfig(resolve(ROOT, 'nats.conf'), principals(), credentialsDir(), resolve(dataDir(), 'nats.conf'));
  try {
    const pid = Number(readFileSync(resolve(dataDir(), 'nats.pid'), 'utf8').trim());
    process.kill(pid, 'SIGHUP');
    return `nats-server ${pid} reloaded ${configFile}`;
  } catch {
    return `no nats-server of npm start to reload: give the users of \`imgr nats-users\` to your NATS system`;
  }
}

/** A principal's identity and grants, in a line. */
const describe = (p: Principal): string =>
  [`uid ${p.uid}, gid ${p.gid}`, ...(p.admin ? ['admin'] : []), ...(p.delegate ? [`delegating for uids ${formatRanges(p.uids)} in gids ${formatRanges(p.gids)}`] : []), ...(p.vmService ? ['VM service'] : [])].join(', ');

export const PRINCIPAL_COMMANDS: Command[] = [
  {
    name: 'principal add',
    usage: 'principal add NAME UID GID [--admin] [--delegate --uids A-B[,C-D] --gids A-B[,C-D]] [--vm-service]',
    summary: 'add (or replace) a service principal: its NATS user (password in the credentials folder), its identity and its grants',
    example: 'imgr principal add portal 10 100 --delegate --uids 1000-1999 --gids 100-199',
    options: { admin: { type: 'boolean' }, delegate: { type: 'boolean' }, uids: { type: 'string' }, gids: { type: 'string' }, 'vm-service': { type: 'boolean' } },
    run: async (_c, a, v, x) => {
      const name = PrincipalNameSchema.safeParse(a[0]);
      if (!name.success) throw new CliError(`NAME ${name.error.issues[0]?.message ?? 'is invalid'}`, EXIT.usage);
      const [uid, gid] = [a[1], a[2]];
      if (uid === undefined || gid === undefined || !/^\d{1,10}$/.test(uid) || !/^\d{1,10}$/.test(gid)) throw new CliError('UID and GID must be numbers', EXIT.usage);
      const ranges = (flag: 'uids' | 'gids'): IdRange[] => {
        const text = v[flag];
        if (text === undefined) return [];
        if (typeof text !== 'string' || v['delegate'] !== true) throw new CliError(`--${flag} is the grant of a delegate: add --delegate`, EXIT.usage);
        const r = parseRanges(text);
        if (r === undefined) throw new CliError(`--${flag} takes ids and ranges, as 1000-1999,3000`, EXIT.usage);
        return r;
      };
      const p = PrincipalSchema.safeParse({
        uid: Number(uid),
        gid: Number(gid),
        admin: v['admin'] === true,
        delegate: v['delegate'] === true,
        uids: ranges('uids'),
        gids: ranges('gids'),
        vmService: v['vm-service'] === true,
      });
      if (!p.success) throw new CliError(p.error.issues.map((i) => i.message).join('; '), EXIT.usage);
      const all = { ...principals({ replacing: name.data }), [name.data]: p.data };
      savePrincipals(principalsFile(), all);
      await publishPrincipals(await x.admin(), all);
      const reloaded = reloadServer();
      const out = { principal: name.data, ...p.data, credentials: resolve(credentialsDir(), name.data), reloaded };
      return { human: `principal ${name.data} (${describe(p.data)}); password in ${out.credentials}; ${reloaded}`, json: out };
    },
  },
  {
    name: 'principal list',
    usage: 'principal list',
    summary: 'the principals and who each acts as',
    example: 'imgr principal list',
    options: {},
    run: () => {
      const all = principals();
      const rows = Object.entries(all).map(([n, p]) => [n, p.uid, p.gid, p.admin ? 'yes' : 'no', p.delegate ? `uids ${formatRanges(p.uids)} gids ${formatRanges(p.gids)}` : 'no', p.vmService ? 'yes' : 'no']);
      return Promise.resolve({ human: table(['NAME', 'UID', 'GID', 'ADMIN', 'DELEGATES FOR', 'VM SERVICE'], rows), json: all });
    },
  },
  {
    name: 'nats-users',
    usage: 'nats-users',
    summary: "the authorization block of every role and principal, for a NATS system you run yourself",
    example: 'imgr nats-users >> my-nats.conf',
    options: {},
    run: () => {
      const block = usersBlock(principals(), credentialsDir());
      return Promise.resolve({ human: block, json: { block }, raw: block });
    },
  },
];
