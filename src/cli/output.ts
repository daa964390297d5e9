import type { FailureCode } from '../messages/failures.js';
/** Exit codes that tell a script what went wrong. */
export const EXIT = { ok: 0, usage: 1, rejected: 2, timeout: 3, connection: 4, failed: 5 } as const;

/** What each edge failure means to a script (README "Exit codes"). */
export const EXIT_FOR_FAILURE: Record<FailureCode, number> = {
  IMGR_TIMEOUT: EXIT.timeout,
  IMGR_SERVER_TOO_OLD: EXIT.connection,
  IMGR_QUERY_REFUSED: EXIT.usage,
  IMGR_CONFLICTS_EXHAUSTED: EXIT.failed,
  IMGR_STORE_TOO_NEW: EXIT.failed,
  IMGR_PARTITIONS_FIXED: EXIT.failed,
  IMGR_BAD_ANSWER: EXIT.failed,
  IMGR_SECRETS_KEY: EXIT.failed,
};

export class CliError extends Error {
  constructor(
    message: string,
    readonly exitCode: number,
    /** What to do next, printed under the error. */
    readonly hint?: string,
  ) {
    super(message);
  }
}

/** A plain text table with aligned columns. */
export function table(headers: readonly string[], rows: readonly (readonly (string | number)[])[]): string {
  const cells = [headers, ...rows.map((r) => r.map(String))];
  const widths = headers.map((_, i) => Math.max(...cells.map((r) => (r[i] ?? '').length)));
  return cells.map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i] ?? 0))).join('  ')).join('\n');
}

/** `KEY  value` lines for one object. */
export function fields(pairs: readonly [string, string | number | boolean | null | undefined][]): string {
  const width = Math.max(...pairs.map(([k]) => k.length));
  return pairs.map(([k, v]) => `${k.padEnd(width)}  ${v === null || v === undefined || v === '' ? '-' : String(v)}`).join('\n');
}
