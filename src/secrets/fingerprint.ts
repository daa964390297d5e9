import { createHash, createPublicKey } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { credentialsDir } from '../platform/nats.js';

/**
 * What a client pins of imgr's secrets key: imgr writes it at first start
 * beside the NATS credentials, and a client seals secrets to no other key
 * (whoever could write imgr_meta could otherwise make clients seal to theirs).
 */

/** `sha256:` and the hex SHA-256 of the public key (SubjectPublicKeyInfo, DER). */
export function publicKeyFingerprint(publicKeyPem: string): string {
  const der = createPublicKey(publicKeyPem).export({ type: 'spki', format: 'der' });
  return `sha256:${createHash('sha256').update(der).digest('hex')}`;
}

/**
 * Where the pinned fingerprint is: IMGR_SECRETS_FINGERPRINT_FILE, else
 * `secrets.fingerprint` in the credentials folder (no principal can be called
 * that: principal names have no dot).
 */
export const fingerprintFile = (env: NodeJS.ProcessEnv = process.env): string => env['IMGR_SECRETS_FINGERPRINT_FILE'] ?? join(credentialsDir(env), 'secrets.fingerprint');

/** The pinned fingerprint, or undefined when none was written. */
export function pinnedFingerprint(file: string = fingerprintFile()): string | undefined {
  try {
    const text = readFileSync(file, 'utf8').trim();
    return text === '' ? undefined : text;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw e;
  }
}
