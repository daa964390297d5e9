import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFileSync, spawn } from 'node:child_process';
import { createServer, type Server, type Socket } from 'node:net';
import { fileURLToPath } from 'node:url';
import { connectAs } from '../../src/platform/nats.js';
import { parseVersion, ServerVersionError } from '../../src/platform/server-version.js';
import { natsServerBinary } from '../../src/platform/nats-server.js';
import { TestNats } from '../support/nats.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));

/** Speaks just enough of the NATS protocol to look like an old nats-server: INFO, then PONG to PING. */
function fakeServer(version: string): Promise<{ url: string; server: Server }> {
  const sockets = new Set<Socket>();
  const server = createServer((s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
    s.write(`INFO ${JSON.stringify({ server_id: 'FAKE', server_name: 'old', version, proto: 1, go: 'go1.19', host: '127.0.0.1', port: 0, headers: true, max_payload: 1048576, jetstream: true })}\r\n`);
    s.on('data', (b) => {
      if (b.toString().includes('PING')) s.write('PONG\r\n');
    });
  });
  server.on('close', () => sockets.forEach((s) => s.destroy()));
  return new Promise((resolve) =>
    server.listen(0, '127.0.0.1', () => {
      const a = server.address();
      resolve({ url: `nats://127.0.0.1:${typeof a === 'object' && a ? a.port : 0}`, server });
    }),
  );
}

describe('the nats-server imgr runs on', () => {
  let nats: TestNats;
  beforeAll(async () => (nats = await TestNats.start()));
  afterAll(async () => nats.dispose());

  it('is the one setup brought: 2.12 or newer', () => {
    const text = execFileSync(natsServerBinary(), ['--version'], { encoding: 'utf8' });
    const v = parseVersion(text.replace(/^nats-server:\s*/, ''));
    expect(v).toBeDefined();
    expect(v && (v.major > 2 || v.minor >= 12)).toBe(true);
  });

  it('is accepted when current, and says its version', async () => {
    const nc = await connectAs('auditor', nats.url);
    expect(parseVersion(nc.info?.version ?? '')?.minor).toBeGreaterThanOrEqual(12);
    await nc.close();
  });

  it('refuses a server that announces 2.9.10, and closes the connection', async () => {
    const { url, server } = await fakeServer('2.9.10');
    try {
      const e = await connectAs('manager', url).catch((err: unknown) => err);
      expect(e).toBeInstanceOf(ServerVersionError);
      expect(e).toMatchObject({ code: 'IMGR_SERVER_TOO_OLD' });
      expect((e as Error).message).toBe(`nats-server 2.9.10 at ${url.replace('nats://', '')} is too old: imgr needs 2.12.0 or newer (README, "nats-server": bash scripts/setup.sh fetches one)`);
    } finally {
      server.close();
    }
  });

  it('a role refuses to start on it with one clear line and a failing exit code', async () => {
    const { url, server } = await fakeServer('2.10.27');
    try {
      const child = spawn(process.execPath, ['--import', 'tsx', 'src/main.ts', 'projections'], {
        cwd: ROOT,
        env: { ...process.env, NATS_URL: url, IMGR_LOG_LEVEL: 'warn' },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let stderr = '';
      child.stderr.on('data', (b: Buffer) => (stderr += b.toString()));
      const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
      expect(code).toBe(1);
      expect(stderr.trim().split('\n')).toEqual([expect.stringMatching(/^imgr: nats-server 2\.10\.27 at .* is too old: imgr needs 2\.12\.0 or newer \(README/)]);
    } finally {
      server.close();
    }
  });
});
