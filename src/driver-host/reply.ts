import type { DriverAction, DriverResult } from '../messages/driver.js';
import type { Execution } from './run.js';

export type Severity = 'E' | 'W' | 'I' | 'D';
export interface LogLine {
  readonly severity: Severity;
  readonly text: string;
}

const LOG_LINE = /^(ERROR|INFO|WARN|DEBUG):\s+(\d+)?\s*(.*)$/;
const SEVERITY: Record<string, Severity> = { ERROR: 'E', WARN: 'W', INFO: 'I', DEBUG: 'D' };

/** driver-contract §7: prefixed stderr lines are logs, the others the error text. */
export function classifyStderr(lines: readonly string[]): { logs: LogLine[]; errorText: string } {
  const logs: LogLine[] = [];
  const errors: string[] = [];
  for (const raw of lines) {
    // ssh and some tools end lines with \r: trimmed first, they are log lines like any other.
    const l = raw.trim();
    const m = LOG_LINE.exec(l);
    if (m) logs.push({ severity: SEVERITY[m[1] ?? 'INFO'] ?? 'I', text: (m[3] ?? '').trim() });
    else if (l !== '') errors.push(l);
  }
  return { logs, errorText: errors.join(' ').trim() };
}

const quote = (s: string): string => JSON.stringify(s.length > 300 ? `${s.slice(0, 300)}…` : s);
const fail = (info: string): { result: DriverResult; info: string } => ({ result: 'FAILURE', info });

/**
 * Turns an execution into the reply (driver-contract §5, §6), validating
 * success output before anything is applied (W30, W32): one line, the fields
 * each action must return, numbers that are numbers. Anything else is a
 * FAILURE whose message quotes what the script printed.
 */
export function replyFor(action: DriverAction, commandLine: string, x: Execution): { result: DriverResult; info: string } {
  const { errorText } = classifyStderr(x.stderr);
  if (x.spawnError !== null) return fail(`Internal error ${x.spawnError}`);
  if (x.timedOut) return fail(`Timeout executing ${commandLine}`);
  if (x.exitCode !== 0) {
    const why = errorText !== '' ? errorText : '-';
    return fail(x.exitCode === null ? `${why} (killed by ${x.signal ?? 'a signal'})` : why);
  }
  if (x.stdoutOverflow) return fail(`${action} printed more output than a driver may (first bytes: ${quote(x.stdout.slice(0, 100))})`);
  // eslint-disable-next-line no-control-regex -- control characters are exactly what is refused here
  if (/[\u0000-\u0008\u000b-\u001f\u007f\ufffd]/.test(x.stdout)) return fail(`${action} printed binary data: ${quote(x.stdout)}`);
  if (action === 'MONITOR') return { result: 'SUCCESS', info: Buffer.from(x.stdout, 'utf8').toString('base64') };

  const lines = x.stdout.split('\n').map((l) => l.trim()).filter((l) => l !== '');
  if (lines.length > 1) return fail(`${action} printed ${lines.length} lines, a driver must print one: ${quote(x.stdout)}`);
  const out = lines[0] ?? '';
  const tokens = out.split(/\s+/).filter((t) => t !== '');
  const ok = (info: string) => ({ result: 'SUCCESS' as const, info });
  switch (action) {
    case 'CP':
      if (tokens.length !== 2 || tokens[0] === '-' || !/^[\w.-]+$/.test(tokens[1] ?? '')) {
        return fail(`CP must print "<source> <format>", printed ${quote(out)}`);
      }
      return ok(out);
    case 'CLONE':
      if (tokens.length < 1 || tokens.length > 2 || tokens[0] === '-') return fail(`CLONE must print "<source> [<format>]", printed ${quote(out)}`);
      return ok(out);
    case 'MKFS':
      if (tokens.length !== 1 || out === '-') return fail(`MKFS must print "<source>", printed ${quote(out)}`);
      return ok(out);
    case 'STAT':
      if (!/^\d+$/.test(out)) return fail(`STAT must print a size in MB, printed ${quote(out)}`);
      return ok(out);
    case 'INCREMENT_FLATTEN':
      if (out !== '' && !/^\d+(\s+\S+)?$/.test(out)) return fail(`INCREMENT_FLATTEN must print "<size_mb> <chain>", printed ${quote(out)}`);
      return ok(out);
    case 'RESTORE':
      // imgr's backup drivers print "<file>:<size_mb> …", the restored disks the host registers.
      if (out === '') return fail('Cannot get info about restored disk images');
      if (!tokens.every((t) => /^\/\S+:\d+$/.test(t))) return fail(`RESTORE must print "<file>:<size_mb> …", printed ${quote(out)}`);
      return ok(out);
    case 'BACKUP':
      if (tokens.length !== 3 || !/^\d+$/.test(tokens[1] ?? '') || !/^[\w.-]+$/.test(tokens[0] ?? '')) {
        return fail(`backup must print "<backup_id> <size_mb> <format>", printed ${quote(out)}`);
      }
      return ok(out);
    case 'RM':
    case 'SNAP_DELETE':
    case 'SNAP_REVERT':
    case 'SNAP_FLATTEN':
      return ok(out);
  }
}
