import { describe, expect, it } from 'vitest';
import type { JsMsg } from '@nats-io/jetstream';
import { InheritedOrder } from '../../src/intake/inherited-order.js';

/** Only the stream sequence matters to the ordering. */
const msg = (seq: number): JsMsg => ({ seq }) as JsMsg;

describe('commands inherited with a partition', () => {
  it('routes the previous holder\'s unacknowledged commands in stream order, then the new ones', () => {
    const routed: number[] = [];
    const order = new InheritedOrder(21, 3, (m) => routed.push(m.seq), 60_000);
    // Redelivered as their deadlines ended (21 before 20), with a new command in between.
    for (const seq of [21, 25, 19, 20]) order.push(msg(seq));
    expect(routed).toEqual([19, 20, 21, 25]);
    order.push(msg(26));
    expect(routed).toEqual([19, 20, 21, 25, 26]);
  });

  it('holds nothing when nothing was left unacknowledged', () => {
    const routed: number[] = [];
    const order = new InheritedOrder(20, 0, (m) => routed.push(m.seq), 60_000);
    order.push(msg(21));
    expect(routed).toEqual([21]);
  });

  it('lets the held commands go after the wait when some never come back (acknowledged by a holder still alive)', async () => {
    const routed: number[] = [];
    const order = new InheritedOrder(20, 3, (m) => routed.push(m.seq), 50);
    order.push(msg(18));
    order.push(msg(22));
    order.push(msg(17));
    expect(routed).toEqual([]);
    await new Promise((r) => setTimeout(r, 120));
    expect(routed).toEqual([17, 18, 22]);
  });
});
