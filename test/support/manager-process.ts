import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type { ManagerConfigInput } from '../../src/platform/config.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));

/** The manager as a separate process (src/main.ts), so a test can kill it like a crash would. */
export class ManagerProcess {
  private constructor(
    private readonly child: ChildProcess,
    readonly output: string[],
  ) {}

  static async start(natsUrl: string, config: ManagerConfigInput = {}): Promise<ManagerProcess> {
    const child = spawn(process.execPath, ['--unhandled-rejections=strict', '--import', 'tsx', 'src/main.ts', 'manager'], {
      cwd: ROOT,
      env: { ...process.env, NATS_URL: natsUrl, IMGR_CONFIG: JSON.stringify(config), IMGR_LOG_LEVEL: 'warn' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const output: string[] = [];
    const p = new ManagerProcess(child, output);
    await new Promise<void>((resolve, reject) => {
      const onData = (b: Buffer): void => {
        output.push(b.toString());
        if (output.join('').includes('imgr manager ready')) resolve();
      };
      child.stdout.on('data', onData);
      child.stderr.on('data', (b: Buffer) => output.push(b.toString()));
      child.once('exit', (code) => reject(new Error(`manager exited with ${String(code)}: ${output.join('')}`)));
    });
    return p;
  }

  /** SIGKILL: no shutdown, no final checkpoint, unacknowledged messages in flight. */
  async kill(): Promise<void> {
    if (this.child.exitCode !== null) return;
    const exited = new Promise((r) => this.child.once('exit', r));
    this.child.kill('SIGKILL');
    await exited;
  }

  async stop(): Promise<void> {
    if (this.child.exitCode !== null) return;
    const exited = new Promise((r) => this.child.once('exit', r));
    this.child.kill('SIGTERM');
    await exited;
  }
}
