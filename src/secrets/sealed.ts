import { createCipheriv, createDecipheriv, createPublicKey, diffieHellman, generateKeyPairSync, hkdfSync, randomBytes, type KeyObject } from 'node:crypto';

/**
 * Secret datastore attributes (W23) travel and rest sealed: encrypted to the
 * driver hosts' X25519 public key (ephemeral ECDH, HKDF-SHA256, AES-256-GCM).
 * Clients seal, the log and the views hold only the sealed text, and only a
 * driver host, which has the private key, opens it for the action that needs
 * it. The hash chain covers the sealed text, so losing the key later never
 * breaks `audit verify`.
 */
export const SEALED_PREFIX = 'imgr-secret:v1:';
/** What views, the API, exports and the CLI show instead of a secret. */
export const REDACTED = '[secret]';
/** Attributes sealed unless the configuration adds more. */
export const DEFAULT_SECRET_ATTRIBUTES = ['RESTIC_PASSWORD'] as const;
export const MAX_SECRET_BYTES = 4096;

const INFO = Buffer.from('imgr sealed secret v1');

export const isSealed = (v: string): boolean => v.startsWith(SEALED_PREFIX);

function keyFor(shared: Buffer, ephemeral: Buffer): Buffer {
  return Buffer.from(hkdfSync('sha256', shared, ephemeral, INFO, 32));
}

/** Seals `plaintext` to a public key given as PEM. */
export function seal(publicKeyPem: string, plaintext: string): string {
  const data = Buffer.from(plaintext, 'utf8');
  if (data.length > MAX_SECRET_BYTES) throw new Error(`a secret is at most ${MAX_SECRET_BYTES} bytes`);
  const recipient = createPublicKey(publicKeyPem);
  const eph = generateKeyPairSync('x25519');
  const ephRaw = eph.publicKey.export({ type: 'spki', format: 'der' });
  const key = keyFor(diffieHellman({ privateKey: eph.privateKey, publicKey: recipient }), ephRaw);
  const iv = randomBytes(12);
  const c = createCipheriv('aes-256-gcm', key, iv);
  const body = Buffer.concat([c.update(data), c.final()]);
  const packed = Buffer.concat([Buffer.from([ephRaw.length]), ephRaw, iv, c.getAuthTag(), body]);
  return `${SEALED_PREFIX}${packed.toString('base64')}`;
}

/** Opens a sealed value with the private key; throws when it was sealed to another key or altered. */
export function unseal(privateKey: KeyObject, sealed: string): string {
  if (!isSealed(sealed)) throw new Error('not a sealed value');
  const packed = Buffer.from(sealed.slice(SEALED_PREFIX.length), 'base64');
  const n = packed[0] ?? 0;
  const ephRaw = packed.subarray(1, 1 + n);
  const iv = packed.subarray(1 + n, 13 + n);
  const tag = packed.subarray(13 + n, 29 + n);
  const body = packed.subarray(29 + n);
  const ephemeral = createPublicKey({ key: ephRaw, format: 'der', type: 'spki' });
  const key = keyFor(diffieHellman({ privateKey, publicKey: ephemeral }), ephRaw);
  const d = createDecipheriv('aes-256-gcm', key, iv);
  d.setAuthTag(tag);
  return Buffer.concat([d.update(body), d.final()]).toString('utf8');
}

/** Any JSON value with every sealed string replaced by REDACTED: for views, answers, exports and logs. */
export function redactSealed<T>(value: T): T {
  if (typeof value === 'string') return (isSealed(value) ? REDACTED : value) as T;
  if (Array.isArray(value)) return value.map((v: unknown) => redactSealed(v)) as T;
  if (value !== null && typeof value === 'object') {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, redactSealed(v as unknown)])) as T;
  }
  return value;
}

/** The secret attributes of a template whose values are not sealed. */
export function unsealedSecrets(template: Readonly<Record<string, string>>, secrets: readonly string[]): string[] {
  const names = new Set(secrets.map((s) => s.toUpperCase()));
  return Object.entries(template)
    .filter(([k, v]) => names.has(k.trim().toUpperCase()) && v !== '' && !isSealed(v))
    .map(([k]) => k);
}
