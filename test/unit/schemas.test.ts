/**
 * schemas/*.json are generated from the zod schemas and accept what imgr
 * really sends: checked with an independent JSON Schema validator (ajv).
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { Ajv2020 } from 'ajv/dist/2020.js';
import { SCHEMAS, schemaText } from '../../scripts/schemas.js';
import { history } from '../support/image-spec.js';
import { registerReady } from '../support/image-states.js';
import { ADMIN } from '../support/fixtures.js';

const file = (name: string): string => readFileSync(new URL(`../../schemas/${name}.json`, import.meta.url), 'utf8');

describe('JSON Schemas of the wire protocol', () => {
  for (const [name, schema] of Object.entries(SCHEMAS)) {
    it(`schemas/${name}.json is current (npm run docs:schemas)`, () => expect(file(name)).toBe(schemaText(name, schema)));
  }

  const ajv = new Ajv2020({ strict: false });
  const validator = (name: string) => ajv.getSchema(`urn:imgr:schema:${name}`) ?? ajv.compile(JSON.parse(file(name)) as object);
  const valid = (name: string, value: unknown): boolean => {
    const v = validator(name);
    const ok = v(value) === true;
    if (!ok) expect.fail(JSON.stringify(v.errors));
    return ok;
  };

  it('a command message as a service writes it validates; a broken one does not', () => {
    const msg = {
      envelope: { commandId: 'c-1', correlationId: 'c-1', causationId: null, actor: { uid: 7, gid: 100, name: 'alice', service: 'vm' }, at: 1 },
      command: { type: 'image.acquire', imageId: 42, vmId: 7, mode: 'deploy' },
      replyTo: '_INBOX.x',
    };
    expect(valid('command-message', msg)).toBe(true);
    const v = validator('command-message');
    expect(v({ ...msg, command: { ...msg.command, mode: 'teleport' } })).toBe(false);
    expect(v({ ...msg, envelope: { ...msg.envelope, commandId: 'has space' } })).toBe(false);
  });

  it('a commit the host writes validates', () => {
    const commit = { v: 1, aggregate: 'image', id: 5, commandId: 'c', correlationId: 'c', causationId: null, actor: ADMIN, at: 1, prev: '', facts: history(5, registerReady()) };
    expect(valid('commit', JSON.parse(JSON.stringify(commit)))).toBe(true);
  });

  it('outcomes validate', () => {
    expect(valid('outcome', { status: 'accepted', commandId: 'c', aggregate: 'image', id: 1, fact: 'image.acquired', state: 'USED', seq: 3 })).toBe(true);
    expect(valid('outcome', { status: 'rejected', commandId: 'c', code: 'IMG_ERR_NOT_FOUND', message: 'Error getting image [1].' })).toBe(true);
  });
});
