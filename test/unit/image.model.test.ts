/**
 * Model-based tests: shortest paths to every reachable (abstract) state of
 * the image machine, from xstate/graph, and a property test that folding the
 * facts of any path with `evolve` gives the machine's own state.
 */
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { getShortestPaths } from 'xstate/graph';
import { createActor } from 'xstate';
import { imageMachine } from '../../src/machines/image/image.machine.js';
import { decideImage, evolveImage, initialImage, viewOf, type ImageAggregate } from '../../src/machines/image/decide.js';
import type { ImageView } from '../../src/messages/image-record.js';
import { ImageFactSchema } from '../../src/messages/image-facts.js';
import { ERRORS } from '../../src/messages/errors.js';
import { IMAGE_STATES, REMOVED } from '../../src/messages/states.js';
import { abstractState, eventsFor, FIXED_EVENTS } from '../support/image-alphabet.js';
import type { ImageEvent } from '../../src/machines/image/events.js';

const paths = getShortestPaths(imageMachine, {
  input: { id: 5 },
  events: (snapshot) => eventsFor({ record: snapshot.context }),
  serializeState: (s) => abstractState(s.value, s.context),
  serializeEvent: (e) => `${e.type}:${e.meta.commandId}`,
});

/** Replays events through `decide`, checking facts against the wire schema and `evolve` against the machine at every step. */
function replayChecked(events: readonly ImageEvent[]): { agg: ImageAggregate; view: ImageView | null; accepted: number } {
  let agg = initialImage(5);
  let view: ImageView | null = null;
  let accepted = 0;
  for (const ev of events) {
    const d = decideImage(agg, ev);
    if (!d.ok) {
      expect(ERRORS[d.rejection.code]).toBeDefined();
      continue;
    }
    expect(ImageFactSchema.safeParse(d.fact).success).toBe(true);
    view = evolveImage(view, d.fact);
    agg = d.next;
    accepted += 1;
    expect(view).toEqual(viewOf(agg));
  }
  return { agg, view, accepted };
}

describe('xstate/graph shortest paths', () => {
  it('reach every state of spec §4 (except the never-persisted INIT) and REMOVED', () => {
    const reached = new Set(paths.map((p) => p.state.value));
    for (const s of [...IMAGE_STATES, REMOVED]) expect(reached, s).toContain(s);
    expect(paths.length).toBeGreaterThan(100);
  });

  it('evolve over the facts of every path equals the state the machine reached', () => {
    for (const p of paths) {
      const events = p.steps.map((s) => s.event).filter((e) => !e.type.startsWith('xstate.'));
      const { agg } = replayChecked(events);
      // Paths end in an abstract state (see abstractState): the replay must land in the same one.
      expect(agg.state).toBe(p.state.value);
      expect(abstractState(agg.state, agg.record)).toBe(abstractState(p.state.value, p.state.context));
    }
  });
});

describe('properties over random command sequences', () => {
  it('evolve(facts) == machine state, facts parse, refusals are registered codes', () => {
    const step = fc.nat({ max: 1000 });
    fc.assert(
      fc.property(fc.array(step, { minLength: 1, maxLength: 40 }), (choices) => {
        let agg = initialImage(5);
        const events: ImageEvent[] = [];
        for (const c of choices) {
          const options = eventsFor(agg);
          const ev = options[c % options.length];
          if (ev === undefined) throw new Error('empty alphabet');
          events.push(ev);
          const d = decideImage(agg, ev);
          if (d.ok) agg = d.next;
        }
        const out = replayChecked(events);
        expect(out.agg).toEqual(agg);
      }),
      { numRuns: 300 },
    );
  });

  it('invariants: state and counters agree (W9, W35), a pending request only while work runs', () => {
    fc.assert(
      fc.property(fc.array(fc.nat({ max: 1000 }), { minLength: 1, maxLength: 40 }), (choices) => {
        let agg = initialImage(5);
        for (const c of choices) {
          const options = eventsFor(agg);
          const ev = options[c % options.length];
          if (ev === undefined) throw new Error('empty alphabet');
          const d = decideImage(agg, ev);
          if (!d.ok) continue;
          agg = d.next;
          const r = agg.record;
          const s = agg.state;
          if (s === 'USED_PERS' || s === 'LOCKED_USED_PERS') expect(r.vms.length).toBeGreaterThan(0);
          if (s === 'LOCKED_USED' || s === 'LOCKED_USED_PERS') expect(r.vms.length).toBeGreaterThan(0);
          if (s === 'READY' && r.type !== 'BACKUP') expect(r.vms.length + r.clones.length).toBe(0);
          if (s === 'CLONE') expect(r.clones.length + r.appClones.length).toBeGreaterThan(0);
          if (s === 'DELETE') expect(r.pending).not.toBeNull();
          if (r.pending?.action === 'RM') expect(s).toBe('DELETE');
          if (s === 'READY' || s === 'USED' || s === 'CLONE' || s === 'DISABLED') expect(r.pending).toBeNull();
        }
      }),
      { numRuns: 300 },
    );
  });
});

describe('persisted snapshot round trip', () => {
  it('snapshot → JSON → restored actor behaves the same as the original', () => {
    const register = FIXED_EVENTS.find((e) => e.type === 'image.allocate');
    const acquire = FIXED_EVENTS.find((e) => e.type === 'image.acquire');
    if (!register || !acquire) throw new Error('alphabet lacks allocate/acquire');
    const original = createActor(imageMachine, { input: { id: 5 } }).start();
    original.send(register);
    original.send(acquire);
    const json = JSON.stringify(original.getPersistedSnapshot());
    expect(json.length).toBeLessThan(2000);
    const restored = createActor(imageMachine, { input: { id: 5 }, snapshot: JSON.parse(json) as ReturnType<typeof original.getPersistedSnapshot> }).start();
    expect(restored.getSnapshot().value).toBe(original.getSnapshot().value);

    const heard: Record<'a' | 'b', unknown[]> = { a: [], b: [] };
    original.on('*', (e) => heard.a.push(e));
    restored.on('*', (e) => heard.b.push(e));
    const pending = original.getSnapshot().context.pending;
    expect(pending?.action).toBe('CP');
    const reply = eventsFor({ record: original.getSnapshot().context }).find((e) => e.type === 'driver.reply');
    const release = FIXED_EVENTS.find((x) => x.type === 'image.release');
    if (!reply || !release) throw new Error('alphabet lacks reply/release');
    for (const e of [reply, release]) {
      original.send(e);
      restored.send(e);
    }
    expect(restored.getSnapshot().value).toBe(original.getSnapshot().value);
    expect(restored.getSnapshot().context).toEqual(original.getSnapshot().context);
    expect(heard.b).toEqual(heard.a);
    expect(heard.a.length).toBe(2);
  });
});
