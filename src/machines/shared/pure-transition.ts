import { createActor, type AnyStateMachine, type EventFrom, type SnapshotFrom } from 'xstate';

/**
 * XState's exported `transition()`, without its cost per call: it builds a
 * throw-away actor (its "inert actor scope") every time, which measured
 * about as much as the transition itself. imgr's machines invoke and spawn
 * nothing, so one scope per machine serves every call; only the collector of
 * the actions a transition executes changes per call, and calls are
 * synchronous, so two never share it.
 */
export function pureTransition<M extends AnyStateMachine>(machine: M): (snapshot: SnapshotFrom<M>, event: EventFrom<M>) => [SnapshotFrom<M>, unknown[]] {
  const self = createActor(machine);
  let collected: unknown[] = [];
  const scope: Parameters<M['transition']>[2] = {
    self,
    id: '',
    sessionId: '',
    system: self.system,
    logger: () => undefined,
    defer: () => undefined,
    emit: () => undefined,
    stopChild: () => undefined,
    actionExecutor: (action) => {
      collected.push(action);
    },
  };
  return (snapshot, event) => {
    collected = [];
    const next = machine.transition(snapshot, event, scope) as SnapshotFrom<M>;
    return [next, collected];
  };
}
