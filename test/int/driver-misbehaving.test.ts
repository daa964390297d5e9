/**
 * Misbehaving driver scripts: each ends in a FAILURE with a clear message,
 * and (through NATS) in the right image state while the host keeps serving.
 */
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { act, datastoreView, imageView } from '../support/driver-request.js';

let drivers: string;
const script = (mad: string, action: string, body: string, mode = 0o755): void => {
  mkdirSync(join(drivers, mad), { recursive: true });
  const f = join(drivers, mad, action);
  writeFileSync(f, `#!/usr/bin/env bash\n${body}\n`);
  chmodSync(f, mode);
};

beforeAll(() => {
  drivers = mkdtempSync(join(tmpdir(), 'imgr-bad-drivers-'));
  script('lines', 'cp', 'cat >/dev/null; echo "/a raw"; echo "/b raw"');
  script('garbage', 'cp', 'cat >/dev/null; printf "\\x01\\x02 garbage"');
  script('huge', 'cp', 'cat >/dev/null; head -c 1000000 /dev/zero | tr "\\0" x');
  script('exit', 'cp', 'cat >/dev/null; echo "INFO: cp: starting" >&2; echo "disk quota exceeded" >&2; exit 3');
  script('onlylog', 'cp', 'cat >/dev/null; echo "ERROR: cp: something broke" >&2; exit 1');
  script('hang', 'cp', 'cat >/dev/null; sleep 300 & wait');
  script('nofmt', 'cp', 'cat >/dev/null; echo "/var/lib/x"');
  script('dash', 'mkfs', 'cat >/dev/null; echo "-"');
  script('noexec', 'cp', 'echo "/a raw"', 0o644);
  script('nostdin', 'cp', 'echo "/a raw"');
  script('present', 'cp', 'cat >/dev/null; echo "/a raw"');
});
afterAll(() => rmSync(drivers, { recursive: true, force: true }));

const run = (mad: string, action: 'CP' | 'MKFS' = 'CP', timeoutMs = 20_000) =>
  act(action, datastoreView('/tmp/none', { dsMad: mad }), imageView({ path: '/tmp/x' }), { driversDir: drivers, timeoutMs });

describe('misbehaving scripts', () => {
  it('several lines (W30)', async () =>
    expect(await run('lines')).toEqual(expect.objectContaining({ result: 'FAILURE', info: 'CP printed 2 lines, a driver must print one: "/a raw\\n/b raw\\n"' })));
  it('garbage', async () => expect((await run('garbage')).info).toBe('CP printed binary data: "\\u0001\\u0002 garbage"'));
  it('huge output', async () => expect((await run('huge')).info).toMatch(/^CP printed more output than a driver may/));
  it('a non-zero exit with a message: the message is the reason; prefixed lines are logs', async () => {
    const r = await run('exit');
    expect(r).toMatchObject({ result: 'FAILURE', info: 'disk quota exceeded' });
    expect(r.logs).toEqual([{ severity: 'I', text: 'cp: starting' }]);
  });
  it('a failure with only log lines reads "-"', async () => expect(await run('onlylog')).toMatchObject({ result: 'FAILURE', info: '-' }));
  it('a script that hangs past the deadline is killed with its children', async () => {
    const r = await run('hang', 'CP', 300);
    expect(r).toMatchObject({ result: 'FAILURE', info: `Timeout executing ${join(drivers, 'hang', 'cp')} 7` });
  });
  it('success without FORMAT (W32)', async () => expect((await run('nofmt')).info).toBe('CP must print "<source> <format>", printed "/var/lib/x"'));
  it('success with "-" (W32)', async () => expect((await run('dash', 'MKFS')).info).toBe('MKFS must print "<source>", printed "-"'));
  it('a missing script', async () => expect((await run('present', 'MKFS')).info).toMatch(/^Internal error spawn .*mkfs ENOENT$/));
  it('a script without the run bit', async () => expect((await run('noexec')).info).toMatch(/^Internal error spawn .*cp EACCES$/));
  it('a driver that does not exist', async () => expect(await run('nosuch')).toMatchObject({ result: 'FAILURE', info: "Datastore driver 'nosuch' not available" }));
  it('a script that does not read its stdin still succeeds', async () => expect(await run('nostdin')).toMatchObject({ result: 'SUCCESS', info: '/a raw' }));
  it('a DS_MAD with a path in it is refused', async () => expect((await run('../fs')).info).toBe("Datastore driver '../fs' not available"));
});
