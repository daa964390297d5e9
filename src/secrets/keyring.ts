import { createPrivateKey, createPublicKey, generateKeyPairSync, type KeyObject } from 'node:crypto';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { Kvm } from '@nats-io/kv';
import type { NatsConnection } from '@nats-io/transport-node';
import { BUCKETS, META_KEYS } from '../messages/names.js';

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
  const current = await meta.get(META_KEYS.publicKey);
  if (current?.operation === 'PUT') {
    if (current.string() === key.publicKeyPem) return;
    throw new Error(`this driver host's secrets key is not the one published in ${BUCKETS.meta}: copy the key file of the first driver host`);
  }
  await meta.create(META_KEYS.publicKey, key.publicKeyPem).catch(async (e: unknown) => {
    const now = await meta.get(META_KEYS.publicKey);
    if (now?.string() !== key.publicKeyPem) throw e;
  });
}
