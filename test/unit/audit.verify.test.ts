/**
 * Tamper evidence: a chain of commits verifies; altering, removing or
 * reordering a commit is detected at the right place.
 */
import { describe, expect, it } from 'vitest';
import { verifyChain, type LoggedMessage } from '../../src/audit/verify.js';
import { commitHash } from '../../src/store/event-store.js';
import type { Commit } from '../../src/messages/wire.js';
import { history } from '../support/image-spec.js';
import { acquire, registerReady } from '../support/image-states.js';
import { ADMIN } from '../support/fixtures.js';
import { event } from '../support/image-spec.js';

/** A real-looking log: two images, each with its own chain, interleaved. */
function log(): LoggedMessage[] {
  const out: LoggedMessage[] = [];
  const prev = new Map<number, string>();
  const facts = new Map([
    [5, history(5, registerReady({ id: 5, persistent: true }), acquire(5, 1), event({ type: 'image.release', imageId: 5, vmId: 1 }))],
    [6, history(6, registerReady({ id: 6 }), event({ type: 'image.disable', imageId: 6 }))],
  ]);
  const order = [5, 6, 5, 6, 5];
  const next = new Map<number, number>();
  for (const [i, id] of order.entries()) {
    const k = next.get(id) ?? 0;
    next.set(id, k + 1);
    const fact = facts.get(id)?.[k];
    if (!fact) throw new Error('fixture');
    const commit: Commit = { v: 1, aggregate: 'image', id, commandId: `c${i}`, correlationId: `c${i}`, causationId: null, actor: ADMIN, at: i, prev: prev.get(id) ?? '', facts: [fact] };
    const data = new TextEncoder().encode(JSON.stringify(commit));
    prev.set(id, commitHash(data));
    out.push({ seq: i + 1, subject: `imgr.evt.image.${id}`, data });
  }
  return out;
}

describe('audit verify', () => {
  it('an untouched log verifies', () => {
    expect(verifyChain(log())).toEqual({ ok: true, commits: 5, aggregates: 2, breaks: [] });
  });

  it('detects an altered commit at the next commit of the same aggregate', () => {
    const l = log();
    const altered = l[0];
    if (!altered) throw new Error('fixture');
    const text = new TextDecoder().decode(altered.data).replace('"uname":"oneadmin"', '"uname":"mallory"');
    l[0] = { ...altered, data: new TextEncoder().encode(text) };
    const v = verifyChain(l);
    expect(v.ok).toBe(false);
    expect(v.breaks.map((b) => [b.seq, b.subject])).toEqual([[3, 'imgr.evt.image.5']]);
    expect(v.breaks[0]?.reason).toMatch(/previous commit of imgr.evt.image.5 was altered, removed or reordered/);
  });

  it('detects a removed commit', () => {
    const l = log().filter((m) => m.seq !== 3);
    expect(verifyChain(l).breaks.map((b) => b.seq)).toEqual([5]);
  });

  it('detects a removed first commit', () => {
    const v = verifyChain(log().filter((m) => m.seq !== 2));
    expect(v.breaks.map((b) => [b.seq, b.subject])).toEqual([[4, 'imgr.evt.image.6']]);
    expect(v.breaks[0]?.reason).toMatch(/earlier commits are missing/);
  });

  it('detects reordered commits', () => {
    const l = log();
    const [a, b] = [l[2], l[4]];
    if (!a || !b) throw new Error('fixture');
    l[2] = { ...b, seq: 3 };
    l[4] = { ...a, seq: 5 };
    expect(verifyChain(l).breaks.map((x) => x.seq)).toEqual([3, 5]);
  });

  it('detects a commit moved to another aggregate\'s subject', () => {
    const l = log();
    const m = l[1];
    if (!m) throw new Error('fixture');
    l[1] = { ...m, subject: 'imgr.evt.image.5' };
    expect(verifyChain(l).breaks[0]?.reason).toBe('commit of image 6 stored on imgr.evt.image.5');
  });
});
