import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { errorTable } from '../../scripts/error-table.js';
import { ERROR_CODES } from '../../src/messages/errors.js';

describe('README error-code table', () => {
  const readme = readFileSync(new URL('../../README.md', import.meta.url), 'utf8');
  it('is the table generated from the registry', () => {
    const m = /<!-- error-table:begin -->\n([\s\S]*?)\n<!-- error-table:end -->/.exec(readme);
    expect(m?.[1]).toBe(errorTable());
  });
  it('lists every code', () => {
    for (const c of ERROR_CODES) expect(readme).toContain(`\`${c}\``);
  });
});
