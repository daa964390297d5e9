import type { Effect } from '../../messages/effects.js';
import type { ErrorCode } from '../../messages/errors.js';

export type Detail = Record<string, string | number | boolean | null>;

/** What a machine emits for one command: the fact of an accepted command, or the refusal. */
export type Outcome<F extends string> =
  | { type: 'fact'; fact: F; detail: Detail; effects: readonly Effect[] }
  | { type: 'rejected'; code: ErrorCode; message: string };

function emittedEvent(a: unknown): unknown {
  if (typeof a !== 'object' || a === null || !('type' in a) || a.type !== 'xstate.emit' || !('params' in a)) return undefined;
  const p = a.params;
  return typeof p === 'object' && p !== null && 'event' in p ? p.event : undefined;
}

/**
 * The single outcome a pure `transition()` emitted. XState's action typing
 * does not list `emit` among executable actions, so they are read
 * structurally; the machines declare `Outcome<F>` as their emitted type.
 * Anything but exactly one outcome is a wiring bug in the machine.
 */
export function singleOutcome<F extends string>(actions: readonly unknown[], what: string): Outcome<F> {
  const emitted = actions.map(emittedEvent).filter((e): e is Outcome<F> => {
    return typeof e === 'object' && e !== null && 'type' in e && (e.type === 'fact' || e.type === 'rejected');
  });
  const [out, ...extra] = emitted;
  if (out === undefined || extra.length > 0) throw new Error(`${what}: ${emitted.length} outcomes instead of one`);
  return out;
}
