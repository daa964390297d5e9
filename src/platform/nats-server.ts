import { spawn, type ChildProcess } from 'node:child_process';
import { accessSync, closeSync, constants, openSync, readFileSync } from 'node:fs';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import { z } from 'zod';
import { safeJson } from './json.js';

export interface NatsServerOptions {
  /** nats.conf to run with. */
  readonly configFile: string;
  /** JetStream store directory (kept across restarts). */
  readonly storeDir: string;
  /** Client port; 'random' lets the server choose (tests). */
  readonly port: number | 'random';
  /** Where the server's own log lines go. */
  readonly onLog?: (line: string) => void;
  /** Serve the monitoring endpoints (/connz, /subsz…) on a random port of the client address: tests that enumerate subscriptions. */
  readonly monitor?: boolean;
  /** The binary to run; natsServerBinary() when absent. */
  readonly binary?: string;
  /** Where the server writes its pid, so `imgr principal add` can make it reload its users. */
  readonly pidFile?: string;
  /**
   * Run it detached, its output appended to this file: it outlives this
   * process (scripts/cluster.sh), stopped later through its pid file.
   */
  readonly logFile?: string;
}

export interface NatsServer {
  readonly url: string;
  readonly port: number;
  /** The monitoring endpoint's base URL, when `monitor` was asked for. */
  readonly monitorUrl?: string;
  readonly pid: number;
  /** Stops the server (SIGTERM, then SIGKILL after a grace period). */
  stop(): Promise<void>;
  /** Kills the server abruptly, as a crash would. */
  kill(): Promise<void>;
}

/** Where scripts/setup.sh unpacks Debian testing's nats-server. */
export const PROJECT_NATS_SERVER = fileURLToPath(new URL('../../.tools/nats-server/usr/sbin/nats-server', import.meta.url));
/** Debian 12's nats-server 2.9, which setup keeps for the store-upgrade test. */
export const OLD_NATS_SERVER = fileURLToPath(new URL('../../.tools/nats-server-old/usr/sbin/nats-server', import.meta.url));

/**
 * The nats-server binary to run, in the order scripts/tools.sh uses: the
 * project's own (setup.sh), then IMGR_NATS_SERVER, then PATH.
 */
export function natsServerBinary(env: NodeJS.ProcessEnv = process.env): string {
  try {
    accessSync(PROJECT_NATS_SERVER, constants.X_OK);
    return PROJECT_NATS_SERVER;
  } catch {
    return env['IMGR_NATS_SERVER'] ?? 'nats-server';
  }
}

const PortsFileSchema = z.object({ nats: z.array(z.string()).min(1), monitoring: z.array(z.string()).optional() });

/**
 * Runs nats-server as a child process with imgr's nats.conf, the way
 * `npm start` and the integration tests both do, and resolves once it
 * accepts clients (it writes a ports file then).
 */
export async function startNatsServer(o: NatsServerOptions): Promise<NatsServer> {
  const portsDir = await mkdtemp(join(tmpdir(), 'imgr-ports-'));
  const args = ['-c', o.configFile, '-sd', o.storeDir, '-p', o.port === 'random' ? '-1' : String(o.port), '--ports_file_dir', portsDir, ...(o.pidFile !== undefined ? ['-P', o.pidFile] : []), ...(o.monitor === true ? ['-m', '-1'] : [])];
  const logFd = o.logFile !== undefined ? openSync(o.logFile, 'a', 0o600) : undefined;
  const child =
    logFd !== undefined
      ? spawn(o.binary ?? natsServerBinary(), args, { stdio: ['ignore', logFd, logFd], detached: true })
      : spawn(o.binary ?? natsServerBinary(), args, { stdio: ['ignore', 'pipe', 'pipe'] });
  if (logFd !== undefined) closeSync(logFd);
  const output: string[] = [];
  const collect = (chunk: Buffer): void => {
    for (const line of chunk.toString('utf8').split('\n')) {
      if (line === '') continue;
      if (output.length < 200) output.push(line);
      o.onLog?.(line);
    }
  };
  child.stdout?.on('data', collect);
  child.stderr?.on('data', collect);
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  let spawnError: Error | undefined;
  child.once('error', (e) => (spawnError = e));

  try {
    const { url, monitorUrl } = await waitForPortsFile(portsDir, child, () => spawnError, o.logFile !== undefined ? { tail: () => tailOf(o.logFile ?? '') } : output);
    if (o.logFile !== undefined) child.unref();
    const port = Number(new URL(url).port);
    return {
      url,
      port,
      ...(monitorUrl !== undefined ? { monitorUrl } : {}),
      pid: child.pid ?? -1,
      stop: () => stopChild(child, exited, 'SIGTERM'),
      kill: () => stopChild(child, exited, 'SIGKILL'),
    };
  } finally {
    await rm(portsDir, { recursive: true, force: true });
  }
}

/** The end of a log file, for an error message. */
function tailOf(file: string): string {
  try {
    return readFileSync(file, 'utf8').split('\n').slice(-30).join('\n');
  } catch {
    return '';
  }
}

async function waitForPortsFile(dir: string, child: ChildProcess, err: () => Error | undefined, log: readonly string[] | { tail: () => string }): Promise<{ url: string; monitorUrl?: string }> {
  const output = (): string => ('tail' in log ? log.tail() : log.join('\n'));
  for (let i = 0; i < 400; i++) {
    const e = err();
    if (e) throw new Error(`cannot run nats-server (is it installed? run scripts/setup.sh): ${e.message}`);
    if (child.exitCode !== null) throw new Error(`nats-server exited with ${child.exitCode}:\n${output()}`);
    const files = (await readdir(dir)).filter((f) => f.endsWith('.ports'));
    const file = files[0];
    if (file !== undefined) {
      // The server may be writing it right now: a file not yet whole is read again on the next round.
      const parsed = PortsFileSchema.safeParse(safeJson(await readFile(join(dir, file), 'utf8')));
      const url = parsed.success ? parsed.data.nats[0] : undefined;
      // The first address is the one the server was told to listen on (loopback in imgr's nats.conf).
      const monitorUrl = parsed.success ? parsed.data.monitoring?.[0] : undefined;
      if (url !== undefined) return { url, ...(monitorUrl !== undefined ? { monitorUrl } : {}) };
    }
    await sleep(25);
  }
  child.kill('SIGKILL');
  throw new Error(`nats-server did not start within 10 s:\n${output()}`);
}

async function stopChild(child: ChildProcess, exited: Promise<number | null>, signal: NodeJS.Signals): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  child.kill(signal);
  const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
  await exited;
  clearTimeout(timer);
}
