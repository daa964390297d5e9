import { Kvm } from '@nats-io/kv';
import type { NatsConnection } from '@nats-io/transport-node';
import { BUCKETS, META_KEYS } from '../messages/names.js';

/** What a client seals and to which key: the driver hosts' public key (null until one started) and the secret attribute names. */
export async function sealingInfo(nc: NatsConnection): Promise<{ publicKeyPem: string | null; attributes: string[] }> {
  // Direct gets of the two keys by name: a principal may read no other key of imgr_meta, and no other way.
  const meta = await new Kvm(nc).open(BUCKETS.meta, { allow_direct: true });
  const pk = await meta.get(META_KEYS.publicKey);
  const attrs = await meta.get(META_KEYS.secretAttributes);
  const list = attrs?.operation === 'PUT' ? (JSON.parse(attrs.string()) as unknown) : null;
  return {
    publicKeyPem: pk?.operation === 'PUT' ? pk.string() : null,
    attributes: Array.isArray(list) ? list.filter((x): x is string => typeof x === 'string') : [],
  };
}
