/**
 * The domain folders are pure (design principle 1). The lint rule that
 * enforces it must actually fire: this lints offending snippets as if they
 * were files of src/machines and src/messages.
 */
import { describe, expect, it } from 'vitest';
import { ESLint } from 'eslint';
import tseslint from 'typescript-eslint';

// The snippets are not files of the TypeScript project; the purity rules need no types.
const eslint = new ESLint({ overrideConfig: [{ files: ['**/*.ts'], ...tseslint.configs.disableTypeChecked }] });
async function messagesFor(code: string, filePath: string): Promise<string[]> {
  const [result] = await eslint.lintText(code, { filePath });
  return (result?.messages ?? []).map((m) => `${m.ruleId ?? ''}: ${m.message}`);
}

describe('purity of src/machines and src/messages', () => {
  const cases: [string, string][] = [
    ["import { readFileSync } from 'node:fs';\nexport const x = readFileSync;", 'no node:*'],
    ["import { connect } from '@nats-io/transport-node';\nexport const x = connect;", 'no NATS'],
    ["import pino from 'pino';\nexport const x = pino;", 'no logger'],
    ['export const t = Date.now();', 'no clock'],
    ['export const t = new Date();', 'no clock'],
    ['export const r = Math.random();', 'no randomness'],
    ['export const e = process.env;', 'no environment'],
  ];
  for (const [code, why] of cases) {
    it(`refuses ${why} in src/machines`, async () => {
      const found = await messagesFor(code, 'src/machines/image/offender.ts');
      expect(found.some((m) => /^no-restricted-(imports|globals|syntax):/.test(m)), found.join('\n')).toBe(true);
    });
  }
  it('refuses a clock in src/messages too', async () => {
    expect((await messagesFor('export const t = Date.now();', 'src/messages/offender.ts')).join()).toMatch(/Time arrives in the envelope/);
  });
  it('allows the same code outside the domain', async () => {
    const found = await messagesFor('export const t = Date.now();', 'src/platform/clock.ts');
    expect(found.filter((m) => m.startsWith('no-restricted'))).toEqual([]);
  });
});

describe('the client library imports no server internals', () => {
  for (const dir of ['store', 'intake', 'actors', 'machines', 'projections', 'reactors']) {
    it(`refuses ../${dir}/ in src/client`, async () => {
      const found = await messagesFor(`import { x } from '../${dir}/anything.js';\nexport const y = x;`, 'src/client/offender.ts');
      expect(found.join('\n')).toMatch(/no-restricted-imports: .*never the server/);
    });
  }
  it('allows the protocol: src/messages, src/protocol, src/secrets/sealed', async () => {
    const code = "import { a } from '../messages/wire.js';\nimport { b } from '../protocol/fingerprint.js';\nimport { c } from '../secrets/sealed.js';\nexport const y = [a, b, c];";
    expect((await messagesFor(code, 'src/client/offender.ts')).filter((m) => m.startsWith('no-restricted'))).toEqual([]);
  });
});
