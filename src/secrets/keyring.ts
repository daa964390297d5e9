import { createPrivateKey, createPublicKey, generateKeyPairSync, type KeyObject } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { Kvm } from '@nats-io/kv';
import type { NatsConnection } from '@nats-io/transport-node';
import { BUCKETS, META_KEYS } from '../messages/names.js';
import { fingerprintFile, pinnedFingerprint, publicKeyFingerprint } from './fingerprint.js';

export { fingerprintFile, pinnedFingerprint, publicKeyFingerprint };

export interface SecretsKey {
  readonly privateKey: KeyObject;
  readonly publicKeyPem: string;
}

/**
 * The driver hosts' private key: read from `file`, or created there at first
 * start (mode 0600). Several driver hosts share one file (copy it). Its
 * public half is published by the manager role (publishSecretsKey), never by
 * a driver host: the drivers role may not write imgr_meta.
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

/** The public half of a key file (a private key, as driver hosts keep it, or a public one). */
export async function publicKeyOfFile(file: string): Promise<string> {
  const pem = await readFile(file, 'utf8');
  return createPublicKey(pem).export({ type: 'spki', format: 'pem' }).toString();
}

/**
 * Whether this driver host's key is the published one (false: none is
 * published yet). Another key published means this host holds another key
 * than the one clients seal to: it says so instead of opening nothing.
 */
export async function isPublishedKey(nc: NatsConnection, key: SecretsKey): Promise<boolean> {
  // By a direct get of its literal subject: the drivers role may read that key of imgr_meta and no other.
  const meta = await new Kvm(nc).open(BUCKETS.meta, { allow_direct: true });
  const current = await meta.get(META_KEYS.publicKey);
  if (current?.operation !== 'PUT') return false;
  if (current.string() === key.publicKeyPem) return true;
  throw new Error(`this driver host's secrets key is not the one published in ${BUCKETS.meta}: copy the key file of the first driver host`);
}

/**
 * Publishes the public key in imgr_meta, once: only the manager role may
 * write it (npm start, or `imgr secrets publish` for a driver host started
 * on its own). A different key already published is refused (secrets
 * sealed to the first key would no longer open).
 */
export async function publishPublicKey(nc: NatsConnection, publicKeyPem: string): Promise<void> {
  const meta = await new Kvm(nc).open(BUCKETS.meta);
  const current = await meta.get(META_KEYS.publicKey);
  if (current?.operation === 'PUT') {
    if (current.string() === publicKeyPem) return;
    throw new Error(`another secrets key is published in ${BUCKETS.meta} (fingerprint ${publicKeyFingerprint(current.string())}): every driver host needs the key file of the first`);
  }
  await meta.create(META_KEYS.publicKey, publicKeyPem).catch(async (e: unknown) => {
    const now = await meta.get(META_KEYS.publicKey);
    if (now?.string() !== publicKeyPem) throw e;
  });
}

/**
 * Writes the fingerprint clients pin (0600, beside the credentials), once:
 * a different one already there is refused, not replaced.
 */
export function pinFingerprint(fingerprint: string, file: string = fingerprintFile()): void {
  const pinned = pinnedFingerprint(file);
  if (pinned === fingerprint) return;
  if (pinned !== undefined) throw new Error(`${file} pins another secrets key (${pinned}, not ${fingerprint}): clients would refuse to seal to it; remove the file only if the key was replaced on purpose`);
  mkdirSync(dirname(file), { recursive: true, mode: 0o700 });
  writeFileSync(file, `${fingerprint}\n`, { mode: 0o600 });
}

/** Publishes the key (manager role) and pins its fingerprint for the clients of this host; returns the fingerprint. */
export async function publishSecretsKey(nc: NatsConnection, publicKeyPem: string, pinFile: string = fingerprintFile()): Promise<string> {
  const fingerprint = publicKeyFingerprint(publicKeyPem);
  const pinned = pinnedFingerprint(pinFile);
  if (pinned !== undefined && pinned !== fingerprint) pinFingerprint(fingerprint, pinFile);
  await publishPublicKey(nc, publicKeyPem);
  pinFingerprint(fingerprint, pinFile);
  return fingerprint;
}
