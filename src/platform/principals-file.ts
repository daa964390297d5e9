import { readFileSync, writeFileSync } from 'node:fs';
import { Kvm } from '@nats-io/kv';
import type { NatsConnection } from '@nats-io/transport-node';
import { DEFAULT_PRINCIPALS, PRINCIPALS_KEY, readPrincipals, type Principals } from './principals.js';
import { BUCKETS } from '../store/provision.js';

/**
 * The principals of a system live in one file (`.data/principals.json` for
 * `npm start`): the NATS users are generated from it and the manager reads
 * it through imgr_meta. A missing file starts with the administrator.
 *
 * An entry that is not consistent (gid 0 without `admin`, `admin` outside
 * gid 0, a grant a delegate may not have) is refused with its reason, and
 * the whole file with it: nothing is started or published from a registry
 * that would grant what it does not say. `replacing` names the entry a
 * `principal add` is about to overwrite, which need not be valid.
 */
export function loadPrincipals(file: string, o: { replacing?: string } = {}): Principals {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch {
    writeFileSync(file, `${JSON.stringify(DEFAULT_PRINCIPALS, null, 2)}\n`);
    return DEFAULT_PRINCIPALS;
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (e) {
    throw new Error(`${file}: not JSON (${(e as Error).message})`);
  }
  const read = readPrincipals(raw);
  if (read === undefined) throw new Error(`${file}: not an object of principals by name`);
  const refused = Object.entries(read.refused).filter(([name]) => name !== o.replacing);
  if (refused.length > 0) {
    const each = refused.map(([name, why]) => `principal ${name}: ${why}`).join('; ');
    throw new Error(`${file}: ${each}. Fix the entry in the file, or replace it with \`imgr principal add NAME UID GID [--admin] [--delegate --uids A-B --gids C-D] [--vm-service]\``);
  }
  return read.principals;
}

export function savePrincipals(file: string, principals: Principals): void {
  writeFileSync(file, `${JSON.stringify(principals, null, 2)}\n`);
}

/** Makes the manager's view of the principals equal the file (it follows imgr_meta live). */
export async function publishPrincipals(nc: NatsConnection, principals: Principals): Promise<void> {
  const meta = await new Kvm(nc).open(BUCKETS.meta);
  await meta.put(PRINCIPALS_KEY, JSON.stringify(principals));
}
