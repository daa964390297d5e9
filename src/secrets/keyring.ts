import { createPrivateKey, createPublicKey, generateKeyPairSync, type KeyObject } from 'node:crypto';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { Kvm } from '@nats-io/kv';
import type { NatsConnection } from '@nats-io/transport-node';
import { BUCKETS } from '../store/provision.js';

/** Keys of imgr_meta: the public key clients seal to, and the attributes they must seal. */
export const PUBLIC_KEY_KEY = 'secrets.publicKey';
export const SECRET_ATTRIBUTES_KEY = 'secrets.attributes';

export interface SecretsKey {
  readonly privateKey: KeyObject;
  readonly publicKeyPem: string;
}

/**
 * The driver hosts' private key: read from `file`, or created there at first
 * start (mode 0600). Several driver hosts share one file (copy it).
 */
export async function loadOrCreateKey(file: string): Promise<SecretsKey> {
  let pem: string;
  try {
    pem = await readFile(file, 'utf8');
  } catch {
    const pair = generateKeyPairSync('x25519');
    pem = pair.privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
    await mkdir(dirname(file), { recursive: true });
    await writeFile(file, pem, { mode: 0o600, flag: 'wx' }).catch(async (e: unknown) => {
      // Another host created it at the same moment: use that one.
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
      pem = await readFile(file, 'utf8');
    });
  }
  const privateKey = createPrivateKey(pem);
  return { privateKey, publicKeyPem: createPublicKey(privateKey).export({ type: 'spki', format: 'pem' }).toString() };
}

/**
 * Publishes the public key in imgr_meta. A different key already published
 * means this host holds another key than its peers: it says so instead of
 * taking over (secrets sealed to the first key would no longer open).
 */
export async function publishPublicKey(nc: NatsConnection, key: SecretsKey): Promise<void> {
  const meta = await new Kvm(nc).open(BUCKETS.meta);
  const current = await meta.get(PUBLIC_KEY_KEY);
  if (current?.operation === 'PUT') {
    if (current.string() === key.publicKeyPem) return;
    throw new Error(`this driver host's secrets key is not the one published in ${BUCKETS.meta}: copy the key file of the first driver host`);
  }
  await meta.create(PUBLIC_KEY_KEY, key.publicKeyPem).catch(async (e: unknown) => {
    const now = await meta.get(PUBLIC_KEY_KEY);
    if (now?.string() !== key.publicKeyPem) throw e;
  });
}

/** What a client needs to seal: the public key (null while no driver host has started) and the secret attributes. */
export async function sealingInfo(nc: NatsConnection): Promise<{ publicKeyPem: string | null; attributes: string[] }> {
  const meta = await new Kvm(nc).open(BUCKETS.meta);
  const pk = await meta.get(PUBLIC_KEY_KEY);
  const attrs = await meta.get(SECRET_ATTRIBUTES_KEY);
  const list = attrs?.operation === 'PUT' ? (JSON.parse(attrs.string()) as unknown) : null;
  return {
    publicKeyPem: pk?.operation === 'PUT' ? pk.string() : null,
    attributes: Array.isArray(list) ? list.filter((x): x is string => typeof x === 'string') : [],
  };
}
