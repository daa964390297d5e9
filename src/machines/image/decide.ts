import { authorizeImage } from '../authorize.js';
import type { ImageRecord, ImageView } from '../../messages/image-record.js';
import type { ImageFact, ImageFactType } from '../../messages/image-facts.js';
import { ImageLifecycleSchema, type ImageLifecycle } from '../../messages/states.js';
import type { Rejection } from '../../messages/errors.js';
import { imageMachine } from './image.machine.js';
import { pureTransition } from '../shared/pure-transition.js';
import type { ImageEvent } from './events.js';
import { emptyImage } from './record.js';
import { changedFields, definedFields } from '../shared/equal.js';
import { singleOutcome } from '../shared/emitted.js';

const transition = pureTransition(imageMachine);

/** The resident, persisted form of one image: its state and its record (a few hundred bytes). */
export interface ImageAggregate {
  readonly state: ImageLifecycle;
  readonly record: ImageRecord;
}

export const initialImage = (id: number): ImageAggregate => ({ state: 'INIT', record: emptyImage(id) });

export type ImageDecision =
  | { readonly ok: true; readonly fact: ImageFact; readonly next: ImageAggregate }
  | { readonly ok: false; readonly rejection: Rejection };

/**
 * Decides one command with the image machine: a pure function of the
 * aggregate and the event (time, ids and outside knowledge arrive in it).
 * Exactly one fact or one rejection comes out.
 */
export function decideImage(agg: ImageAggregate, event: ImageEvent): ImageDecision {
  const exists = agg.state !== 'INIT' && agg.state !== 'REMOVED';
  const origin = event.type === 'image.clone' ? event.ctx.origin : null;
  const denied = authorizeImage(event, exists ? agg.record : null, event.meta, origin);
  if (denied) return { ok: false, rejection: denied };
  const snapshot = imageMachine.resolveState({ value: agg.state, context: agg.record });
  const [next, actions] = transition(snapshot, event);
  const out = singleOutcome<ImageFactType>(actions, `image machine, ${event.type} in ${agg.state}`);
  if (out.type === 'rejected') return { ok: false, rejection: { code: out.code, message: out.message } };
  const state = ImageLifecycleSchema.parse(next.value);
  const effects = [...out.effects];
  let record = next.context;
  // W38: the space a creation reserved is given back the moment the image leaves LOCKED, whichever way:
  // its record stops holding it, and every count of the datastore's reservations follows the image's facts.
  if (agg.record.reservedMb > 0 && state !== 'LOCKED') record = { ...record, reservedMb: 0 };
  const fact: ImageFact = {
    type: out.fact,
    imageId: record.id,
    state,
    prevState: agg.state,
    // A creation carries the whole record, so the first fact of an image describes it completely.
    changes: agg.state === 'INIT' ? record : changedFields(agg.record, record),
    detail: out.detail,
    effects,
  };
  return { ok: true, fact, next: { state, record } };
}

/** Rebuilds an image view from facts alone (design principle 2). */
export function evolveImage(view: ImageView | null, fact: ImageFact): ImageView {
  const base: ImageView = view ?? { ...emptyImage(fact.imageId), state: 'INIT' };
  return { ...base, ...definedFields(fact.changes), state: fact.state };
}

export const viewOf = (agg: ImageAggregate): ImageView => ({ ...agg.record, state: agg.state });
export const aggregateOf = (view: ImageView): ImageAggregate => {
  const { state, ...record } = view;
  return { state, record };
};
