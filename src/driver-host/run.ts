import { spawn } from 'node:child_process';

export interface RunOptions {
  readonly script: string;
  readonly args: readonly string[];
  readonly stdin: string;
  readonly env: Readonly<Record<string, string>>;
  /** Working directory; the host's own when absent. */
  readonly cwd?: string | undefined;
  readonly timeoutMs: number;
  /** Between SIGTERM and SIGKILL of the process group. */
  readonly graceMs: number;
  /** stdout beyond this is dropped and the run counts as misbehaving. */
  readonly maxStdoutBytes: number;
  readonly onStderrLine?: (line: string) => void;
}

export interface Execution {
  readonly exitCode: number | null;
  readonly signal: string | null;
  readonly stdout: string;
  readonly stdoutOverflow: boolean;
  readonly stderr: readonly string[];
  readonly timedOut: boolean;
  /** Set when the script could not be started at all (missing, not executable). */
  readonly spawnError: string | null;
}

const MAX_STDERR_LINES = 1000;

/**
 * Runs one action script in its own process group (driver-contract §3):
 * payload on stdin, one argument, stdout collected up to a bound, stderr
 * line by line. On timeout the whole group gets SIGTERM, then SIGKILL.
 */
export function runScript(o: RunOptions): Promise<Execution> {
  return new Promise((resolve) => {
    let child;
    try {
      child = spawn(o.script, o.args, { detached: true, stdio: ['pipe', 'pipe', 'pipe'], env: { ...process.env, ...o.env }, ...(o.cwd !== undefined ? { cwd: o.cwd } : {}) });
    } catch (e) {
      resolve({ exitCode: null, signal: null, stdout: '', stdoutOverflow: false, stderr: [], timedOut: false, spawnError: String(e) });
      return;
    }
    const out: Buffer[] = [];
    let outBytes = 0;
    let overflow = false;
    const err: string[] = [];
    let partial = '';
    let timedOut = false;
    let spawnError: string | null = null;
    const group = (sig: NodeJS.Signals): void => {
      try {
        if (child.pid !== undefined) process.kill(-child.pid, sig);
      } catch {
        // The group is already gone.
      }
    };
    const killer = setTimeout(() => {
      timedOut = true;
      group('SIGTERM');
      setTimeout(() => group('SIGKILL'), o.graceMs).unref();
    }, o.timeoutMs);

    child.stdout.on('data', (b: Buffer) => {
      if (outBytes + b.length > o.maxStdoutBytes) {
        overflow = true;
        out.push(b.subarray(0, Math.max(0, o.maxStdoutBytes - outBytes)));
        outBytes = o.maxStdoutBytes;
        return;
      }
      out.push(b);
      outBytes += b.length;
    });
    const line = (l: string): void => {
      if (err.length < MAX_STDERR_LINES) err.push(l);
      o.onStderrLine?.(l);
    };
    child.stderr.on('data', (b: Buffer) => {
      const lines = (partial + b.toString('utf8')).split('\n');
      partial = lines.pop() ?? '';
      for (const l of lines) line(l);
    });
    // A script that does not read its stdin must not fail the run (EPIPE).
    child.stdin.on('error', () => undefined);
    child.stdin.end(o.stdin);
    child.once('error', (e) => {
      spawnError = e.message;
    });
    child.once('close', (code, signal) => {
      clearTimeout(killer);
      if (partial !== '') line(partial);
      resolve({
        exitCode: code,
        signal,
        stdout: Buffer.concat(out).toString('utf8'),
        stdoutOverflow: overflow,
        stderr: err,
        timedOut,
        spawnError,
      });
    });
  });
}
