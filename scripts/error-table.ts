/**
 * The error-code table of the README, generated from the registry so the
 * documentation cannot drift: `npm run docs:errors` rewrites it in place, and
 * a unit test checks that the README holds exactly this table.
 */
import { readFileSync, writeFileSync } from 'node:fs';
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

export const TABLE_PATTERN = /(<!-- error-table:begin -->\n)[\s\S]*?(\n<!-- error-table:end -->)/;

if (import.meta.url === `file://${process.argv[1] ?? ''}`) {
  const readme = new URL('../README.md', import.meta.url);
  const text = readFileSync(readme, 'utf8');
  writeFileSync(readme, text.replace(TABLE_PATTERN, (_m, begin: string, end: string) => `${begin}${errorTable()}${end}`));
}
