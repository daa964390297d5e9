import { STREAMS } from '../store/provision.js';
import type { ReactorContext } from './log-reactor.js';

/** The key in imgr_meta of a reactor's position: every commit up to it is done. */
export const positionKey = (reactor: string): string => `reactor.${reactor}`;

/**
 * Where a reactor resumes. Stored by the reactor; on a store an earlier
 * version ran, its durable consumer on IMGR_EVT says it (everything up to its
 * acknowledgement floor is done), and the durable goes once the position is
 * stored. A reactor with neither starts at what the host has read: nothing
 * of an existing log is done twice (a store always had the durable).
 */
export async function readPosition(ctx: Pick<ReactorContext, 'meta' | 'jsm' | 'host' | 'log'>, reactor: string): Promise<number> {
  const stored = await ctx.meta.get(positionKey(reactor));
  if (stored?.operation === 'PUT') {
    const seq = Number(stored.string());
    if (Number.isSafeInteger(seq) && seq >= 0) return seq;
  }
  const durable = await ctx.jsm.consumers.info(STREAMS.events, reactor).catch(() => undefined);
  const from = durable ? durable.ack_floor.stream_seq : ctx.host.appliedSeq;
  await writePosition(ctx.meta, reactor, from);
  if (durable) {
    await ctx.jsm.consumers.delete(STREAMS.events, reactor);
    ctx.log.info({ reactor, from }, 'reactor position taken over from its durable consumer, which is gone now');
  } else if (from > 0) {
    ctx.log.warn({ reactor, from }, 'reactor has no position: it starts where the log is now');
  }
  return from;
}

export async function writePosition(meta: ReactorContext['meta'], reactor: string, seq: number): Promise<void> {
  await meta.put(positionKey(reactor), String(seq));
}
