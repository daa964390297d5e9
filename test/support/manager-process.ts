import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type { ManagerConfigInput } from '../../src/platform/config.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));

export type RoleName = 'manager' | 'drivers' | 'projections' | 'api';

/**
 * One role as a separate process (src/main.ts <role>), so a test can kill it
 * like a crash would. Roles run with --unhandled-rejections=strict: a
 * rejection nobody handles ends the process, and `exitCode` shows it.
 */
export class RoleProcess {
  private constructor(
    private readonly child: ChildProcess,
    readonly role: RoleName,
    readonly output: string[],
  ) {}

  static async start(role: RoleName, natsUrl: string, env: NodeJS.ProcessEnv = {}): Promise<RoleProcess> {
    // IMGR_PROFILE_DIR: each role writes a CPU profile there when it stops (benchmarks, profiling).
    const profile = process.env['IMGR_PROFILE_DIR'];
    const profiling = profile !== undefined && profile !== '' ? ['--cpu-prof', `--cpu-prof-dir=${profile}`, `--cpu-prof-name=${role}-${Date.now()}.cpuprofile`] : [];
    const child = spawn(process.execPath, [...profiling, '--unhandled-rejections=strict', '--import', 'tsx', 'src/main.ts', role], {
      cwd: ROOT,
      env: { ...process.env, NATS_URL: natsUrl, IMGR_LOG_LEVEL: 'warn', IMGR_METRICS_PORT: '0', ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const output: string[] = [];
    const p = new RoleProcess(child, role, output);
    await new Promise<void>((resolve, reject) => {
      const onData = (b: Buffer): void => {
        if (output.length < 2000) output.push(b.toString());
        if (output.join('').includes(`imgr ${role} ready`)) resolve();
      };
      child.stdout.on('data', onData);
      child.stderr.on('data', (b: Buffer) => output.length < 2000 && output.push(b.toString()));
      child.once('exit', (code) => reject(new Error(`${role} exited with ${String(code)}: ${output.join('')}`)));
    });
    return p;
  }

  /** Where the role serves /metrics, /healthz and /readyz (it prints it before it is ready). */
  get opsUrl(): string {
    const url = new RegExp(`imgr ${this.role} metrics: (http://\\S+)/metrics`).exec(this.output.join(''))?.[1];
    if (url === undefined) throw new Error(`${this.role} printed no metrics address`);
    return url;
  }

  get pid(): number {
    return this.child.pid ?? -1;
  }

  /** Resolves when the process has ended, however it ended (a failpoint's SIGKILL included). */
  ended(): Promise<void> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return Promise.resolve();
    return new Promise((r) => this.child.once('exit', () => r()));
  }

  /** The exit code once the process ended by itself (not by kill or stop), else null. */
  get exitCode(): number | null {
    return this.child.exitCode;
  }

  /** SIGKILL: no shutdown, no final checkpoint, unacknowledged messages in flight. */
  async kill(): Promise<void> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return;
    const exited = new Promise((r) => this.child.once('exit', r));
    this.child.kill('SIGKILL');
    await exited;
  }

  async stop(): Promise<void> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return;
    const exited = new Promise((r) => this.child.once('exit', r));
    this.child.kill('SIGTERM');
    await exited;
  }
}

/** The manager as a separate process. */
export const ManagerProcess = {
  start: (natsUrl: string, config: ManagerConfigInput = {}, env: NodeJS.ProcessEnv = {}): Promise<RoleProcess> =>
    RoleProcess.start('manager', natsUrl, { IMGR_CONFIG: JSON.stringify(config), ...env }),
};
