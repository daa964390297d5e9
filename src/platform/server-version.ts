import { ImgrError } from '../messages/failures.js';
/**
 * imgr stands on features nats-server added in 2.10–2.12 (atomic batch
 * publish, per-message TTL, priority groups, multi-filter consumers, subject
 * expectations over wildcards). A connection to an older server is refused
 * up front with one line, rather than failing later on a missing feature.
 */
export const MIN_NATS_SERVER = '2.12.0';

export interface Version {
  readonly major: number;
  readonly minor: number;
  readonly patch: number;
}

/** "2.15.1", "v2.12.0-RC.3", "2.11.4-binary" → numbers; undefined when unreadable. */
export function parseVersion(text: string): Version | undefined {
  const m = /^v?(\d+)\.(\d+)(?:\.(\d+))?/.exec(text.trim());
  if (!m) return undefined;
  return { major: Number(m[1]), minor: Number(m[2]), patch: Number(m[3] ?? 0) };
}

export function compareVersions(a: Version, b: Version): number {
  return a.major - b.major || a.minor - b.minor || a.patch - b.patch;
}

export class ServerVersionError extends ImgrError {
  constructor(
    readonly found: string,
    readonly server: string,
  ) {
    super('IMGR_SERVER_TOO_OLD', `nats-server ${found} at ${server} is too old: imgr needs ${MIN_NATS_SERVER} or newer (README, "nats-server": bash scripts/setup.sh fetches one)`);
    this.name = 'ServerVersionError';
  }
}

/** Throws ServerVersionError when the INFO's version is below the minimum (or unreadable). */
export function assertServerVersion(version: string | undefined, server: string): void {
  const found = version ?? 'of unknown version';
  const v = version === undefined ? undefined : parseVersion(version);
  const min = parseVersion(MIN_NATS_SERVER);
  if (v === undefined || min === undefined || compareVersions(v, min) < 0) throw new ServerVersionError(found, server);
}
