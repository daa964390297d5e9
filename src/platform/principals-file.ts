import { readFileSync, writeFileSync } from 'node:fs';
import { Kvm } from '@nats-io/kv';
import type { NatsConnection } from '@nats-io/transport-node';
import { DEFAULT_PRINCIPALS, PRINCIPALS_KEY, PrincipalsSchema, type Principals } from './principals.js';
import { BUCKETS } from '../store/provision.js';

/**
 * The principals of a system live in one file (`.data/principals.json` for
 * `npm start`): the NATS users are generated from it and the manager reads
 * it through imgr_meta. A missing file starts with the administrator.
 */
export function loadPrincipals(file: string): Principals {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch {
    writeFileSync(file, `${JSON.stringify(DEFAULT_PRINCIPALS, null, 2)}\n`);
    return DEFAULT_PRINCIPALS;
  }
  const p = PrincipalsSchema.safeParse(JSON.parse(text));
  if (!p.success) throw new Error(`${file}: ${p.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}`);
  return p.data;
}

export function savePrincipals(file: string, principals: Principals): void {
  writeFileSync(file, `${JSON.stringify(principals, null, 2)}\n`);
}

/** Makes the manager's view of the principals equal the file (it follows imgr_meta live). */
export async function publishPrincipals(nc: NatsConnection, principals: Principals): Promise<void> {
  const meta = await new Kvm(nc).open(BUCKETS.meta);
  await meta.put(PRINCIPALS_KEY, JSON.stringify(principals));
}
