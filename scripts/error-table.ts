/**
 * Prints the error-code table of the README from the registry, so the
 * documentation cannot drift: `npx tsx scripts/error-table.ts`; a unit test
 * checks that the README holds exactly this table.
 */
import { ERRORS, ERROR_CODES } from '../src/messages/errors.js';

const placeholder = (code: (typeof ERROR_CODES)[number]): string => {
  // Render the template with its argument names, e.g. `<state>`.
  const text = ERRORS[code].text as (a: Record<string, string>) => string;
  return text(new Proxy({}, { get: (_t, k) => `<${String(k)}>` }));
};

export function errorTable(): string {
  const rows = ERROR_CODES.map((c) => `| \`${c}\` | \`${placeholder(c)}\` | ${ERRORS[c].spec} |`);
  return ['| code | text | from |', '|---|---|---|', ...rows].join('\n');
}

if (import.meta.url === `file://${process.argv[1] ?? ''}`) console.log(errorTable());
