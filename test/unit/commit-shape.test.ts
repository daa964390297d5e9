/**
 * A commit written in this code's own shape (its fingerprint in the commit's
 * header) is read without the schema; any other commit, or one whose frame
 * is wrong, is read with it. The fingerprint follows the schema.
 */
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { COMMIT_SHAPE, CommitSchema, parseCommit, shapeOf } from '../../src/messages/wire.js';
import { history } from '../support/image-spec.js';
import { registerReady } from '../support/image-states.js';
import { ADMIN } from '../support/fixtures.js';

const commit = { v: 1, aggregate: 'image', id: 5, commandId: 'c', correlationId: 'c', causationId: null, actor: ADMIN, at: 1, prev: '', facts: history(5, registerReady()) };
// A field no schema of this code knows, as an older or newer writer might leave one.
const withExtra = JSON.stringify({ ...commit, facts: commit.facts.map((f) => ({ ...f, changes: { ...f.changes, retired: true } })) });

describe('commits in this code\'s own shape', () => {
  it('are read as written when they carry its fingerprint, and through the schema otherwise', () => {
    const fast = parseCommit(withExtra, COMMIT_SHAPE);
    const checked = parseCommit(withExtra);
    const other = parseCommit(withExtra, '0000000000000000');
    expect('unreadable' in fast || fast.facts[0]?.changes).toHaveProperty('retired', true);
    expect('unreadable' in checked || checked.facts[0]?.changes).not.toHaveProperty('retired');
    expect(other).toEqual(checked);
    // Either way the same commit when it holds only what the schema knows.
    expect(parseCommit(JSON.stringify(commit), COMMIT_SHAPE)).toEqual(parseCommit(JSON.stringify(commit)));
  });

  it('are still checked for their frame: a broken one is read with the schema and reported unreadable', () => {
    for (const broken of [{ ...commit, facts: [] }, { ...commit, aggregate: 'vm' }, { ...commit, id: 'five' }, 7]) {
      expect(parseCommit(JSON.stringify(broken), COMMIT_SHAPE)).toHaveProperty('unreadable');
    }
  });

  it('have a fingerprint that changes with the schema', () => {
    expect(COMMIT_SHAPE).toMatch(/^[0-9a-f]{16}$/);
    expect(shapeOf(CommitSchema)).toBe(COMMIT_SHAPE);
    const before = z.object({ a: z.number() });
    expect(shapeOf(before)).toBe(shapeOf(z.object({ a: z.number() })));
    expect(shapeOf(before)).not.toBe(shapeOf(z.object({ a: z.number(), b: z.string().default('') })));
    expect(shapeOf(before)).not.toBe(shapeOf(z.object({ a: z.string() })));
  });
});
