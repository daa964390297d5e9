/**
 * Crash points for recovery tests: a process started with
 * IMGR_FAILPOINTS=<name>[,<name>…] kills itself (SIGKILL, no cleanup) the
 * first time it reaches a named point, the way a power cut would. Unset in
 * production: one lookup in an empty set.
 */
const armed = new Set((process.env['IMGR_FAILPOINTS'] ?? '').split(',').map((s) => s.trim()).filter((s) => s !== ''));

export function failpoint(name: string): void {
  if (armed.size === 0 || !armed.has(name)) return;
  process.stderr.write(`imgr failpoint ${name}: killing this process\n`);
  process.kill(process.pid, 'SIGKILL');
}
