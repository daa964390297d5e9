import { describe, expect, it } from 'vitest';
import { createPublicKey, generateKeyPairSync } from 'node:crypto';
import { REDACTED, SEALED_PREFIX, isSealed, redactSealed, seal, unseal, unsealedSecrets } from '../../src/secrets/sealed.js';

const pair = () => {
  const k = generateKeyPairSync('x25519');
  return { privateKey: k.privateKey, pem: createPublicKey(k.privateKey).export({ type: 'spki', format: 'pem' }).toString() };
};

describe('sealed secrets (W23)', () => {
  it('open with the right key only, and differ each time they are sealed', () => {
    const a = pair();
    const b = pair();
    const one = seal(a.pem, 'correct horse');
    const two = seal(a.pem, 'correct horse');
    expect(one.startsWith(SEALED_PREFIX) && isSealed(one)).toBe(true);
    expect(one).not.toBe(two);
    expect(one).not.toContain('correct horse');
    expect(unseal(a.privateKey, one)).toBe('correct horse');
    expect(() => unseal(b.privateKey, one)).toThrow();
  });

  it('refuse an altered value', () => {
    const a = pair();
    const s = seal(a.pem, 'x');
    const body = Buffer.from(s.slice(SEALED_PREFIX.length), 'base64');
    body[body.length - 1] = (body[body.length - 1] ?? 0) ^ 1;
    expect(() => unseal(a.privateKey, SEALED_PREFIX + body.toString('base64'))).toThrow();
    expect(() => unseal(a.privateKey, 'plain')).toThrow(/not a sealed value/);
  });

  it('are redacted wherever they sit in a value, and plain secret attributes are found', () => {
    const s = seal(pair().pem, 'pw');
    expect(redactSealed({ a: [s, 'keep'], b: { c: s }, n: 1, z: null })).toEqual({ a: [REDACTED, 'keep'], b: { c: REDACTED }, n: 1, z: null });
    expect(unsealedSecrets({ RESTIC_PASSWORD: 'pw', NAME: 'n' }, ['RESTIC_PASSWORD'])).toEqual(['RESTIC_PASSWORD']);
    expect(unsealedSecrets({ restic_password: s }, ['RESTIC_PASSWORD'])).toEqual([]);
    expect(unsealedSecrets({ RESTIC_PASSWORD: '' }, ['RESTIC_PASSWORD'])).toEqual([]);
  });
});
