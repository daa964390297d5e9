/**
 * Reads the events a pure `transition()` emitted. XState's action typing does
 * not list `emit` among executable actions, so they are inspected structurally
 * and kept only if `accept` recognises them.
 */
export function emittedEvents<E>(actions: readonly unknown[], accept: (x: unknown) => x is E): E[] {
  return actions.flatMap((a) => {
    if (typeof a !== 'object' || a === null || !('type' in a) || a.type !== 'xstate.emit' || !('params' in a)) return [];
    const p = a.params;
    const e: unknown = typeof p === 'object' && p !== null && 'event' in p ? p.event : undefined;
    return accept(e) ? [e] : [];
  });
}
