import { describe, it, expect } from 'vitest';
import { assertServerVersion, compareVersions, MIN_NATS_SERVER, parseVersion, ServerVersionError } from '../../src/platform/server-version.js';

describe('nats-server version check', () => {
  it.each([
    ['2.15.1', { major: 2, minor: 15, patch: 1 }],
    ['v2.12.0-RC.3', { major: 2, minor: 12, patch: 0 }],
    ['2.11', { major: 2, minor: 11, patch: 0 }],
    [' 2.10.27-binary ', { major: 2, minor: 10, patch: 27 }],
  ])('reads %s', (text, v) => {
    expect(parseVersion(text)).toEqual(v);
  });

  it('refuses what it cannot read', () => {
    expect(parseVersion('')).toBeUndefined();
    expect(parseVersion('nightly')).toBeUndefined();
    expect(() => assertServerVersion(undefined, 'nats://x:1')).toThrow(ServerVersionError);
    expect(() => assertServerVersion('nightly', 'nats://x:1')).toThrow(/nats-server nightly at nats:\/\/x:1 is too old/);
  });

  it('orders versions numerically, not as text', () => {
    const v = (s: string) => parseVersion(s) ?? { major: 0, minor: 0, patch: 0 };
    expect(compareVersions(v('2.10.0'), v('2.9.10'))).toBeGreaterThan(0);
    expect(compareVersions(v('2.12.0'), v('2.12.0'))).toBe(0);
    expect(compareVersions(v('2.11.9'), v('2.12.0'))).toBeLessThan(0);
  });

  it.each(['2.9.10', '2.10.27', '2.11.9'])('refuses %s with the version found, the version needed and where to look', (found) => {
    expect(() => assertServerVersion(found, 'nats://127.0.0.1:4222')).toThrow(
      `nats-server ${found} at nats://127.0.0.1:4222 is too old: imgr needs ${MIN_NATS_SERVER} or newer (README, "nats-server": bash scripts/setup.sh fetches one)`,
    );
  });

  it.each(['2.12.0', '2.15.1', '3.0.0'])('accepts %s', (found) => {
    expect(() => assertServerVersion(found, 'nats://127.0.0.1:4222')).not.toThrow();
  });
});
