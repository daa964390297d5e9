import { expect } from 'vitest';
import type { ImageCommandInput } from '../../src/messages/image-commands.js';
import { ImageCommandSchema } from '../../src/messages/image-commands.js';
import type { ImageFact } from '../../src/messages/image-facts.js';
import type { ImageView } from '../../src/messages/image-record.js';
import type { ImageLifecycle } from '../../src/messages/states.js';
import type { ErrorCode } from '../../src/messages/errors.js';
import type { Actor } from '../../src/messages/envelope.js';
import { decisionContext, type DecisionContext, type ImageEvent } from '../../src/machines/image/events.js';
import {
  aggregateOf,
  decideImage,
  evolveImage,
  initialImage,
  type ImageAggregate,
  type ImageDecision,
} from '../../src/machines/image/decide.js';
import { ADMIN, IMAGE_DS, T0 } from './fixtures.js';

let seq = 0;

/** The folder of the datastore the events' images live in (their BASE_PATH). */
export const DS_FOLDER = '/ds/1';

export interface EventOptions {
  readonly ctx?: Partial<DecisionContext>;
  readonly actor?: Actor;
  readonly at?: number;
  readonly commandId?: string;
}

/** A machine event: the wire command (parsed, so defaults apply) plus envelope data and context. */
export function event(command: ImageCommandInput, o: EventOptions = {}): ImageEvent {
  seq += 1;
  return {
    ...ImageCommandSchema.parse(command),
    meta: { commandId: o.commandId ?? `cmd-${seq}`, at: o.at ?? T0 + seq * 1000, actor: o.actor ?? ADMIN },
    // A driver's file is taken only inside its datastore's folder (the default datastore's here).
    ctx: decisionContext({ datastore: IMAGE_DS, storage: { folder: DS_FOLDER, claimed: {} }, ...o.ctx }),
  };
}

/** Runs commands from INIT, each of which must be accepted, and returns the facts. */
export function history(id: number, ...steps: readonly (ImageEvent | ((agg: ImageAggregate) => ImageEvent))[]): ImageFact[] {
  let agg = initialImage(id);
  const facts: ImageFact[] = [];
  for (const s of steps) {
    const ev = typeof s === 'function' ? s(agg) : s;
    const d = decideImage(agg, ev);
    if (!d.ok) throw new Error(`history step ${ev.type} in ${agg.state} refused: ${d.rejection.code} ${d.rejection.message}`);
    facts.push(d.fact);
    agg = d.next;
  }
  return facts;
}

/** Folds facts into a view with `evolve` alone, the way projections do. */
export function replay(facts: readonly ImageFact[]): ImageView | null {
  return facts.reduce<ImageView | null>((v, f) => evolveImage(v, f), null);
}

class When {
  constructor(
    private readonly decision: ImageDecision,
    private readonly before: ImageAggregate,
  ) {}

  /** The command is accepted; its one fact matches `expected`. */
  then(expected: Partial<Omit<ImageFact, 'changes'>> & { changes?: Record<string, unknown> }): ImageFact {
    const d = this.decision;
    if (!d.ok) throw new Error(`expected acceptance, got ${d.rejection.code}: ${d.rejection.message}`);
    expect(d.fact).toMatchObject(expected);
    expect(d.fact.prevState).toBe(this.before.state);
    return d.fact;
  }

  /** The command is accepted and leaves the image in `state`. */
  thenState(state: ImageLifecycle): ImageFact {
    return this.then({ state });
  }

  /** The command is refused with exactly this code and text, and nothing is recorded. */
  thenRejects(code: ErrorCode, text: string): void {
    const d = this.decision;
    if (d.ok) throw new Error(`expected ${code}, got fact ${d.fact.type} → ${d.fact.state}`);
    expect(d.rejection).toEqual({ code, message: text });
  }

  get aggregate(): ImageAggregate {
    if (!this.decision.ok) throw new Error('refused');
    return this.decision.next;
  }
}

/** given(facts).when(command).then(fact) / .thenRejects(code, text) */
export function given(facts: readonly ImageFact[], id = facts[0]?.imageId ?? 5) {
  const view = replay(facts);
  return givenAggregate(view === null ? initialImage(id) : aggregateOf(view));
}

/** Starts from an aggregate directly: for cells whose type/state pair no command sequence reaches. */
export function givenAggregate(agg: ImageAggregate) {
  return {
    aggregate: agg,
    when: (ev: ImageEvent | ((a: ImageAggregate) => ImageEvent)) =>
      new When(decideImage(agg, typeof ev === 'function' ? ev(agg) : ev), agg),
  };
}
