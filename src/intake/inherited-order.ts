import type { JsMsg } from '@nats-io/jetstream';

/**
 * Hands a partition's commands to the intake in stream order when it takes
 * the partition over with commands still unacknowledged by the previous
 * holder (a manager that died, or this one before a restart). JetStream
 * redelivers those in the order their deadlines ended, and a previous holder
 * that renewed an earlier command but had not yet seen a later one leaves
 * the later one's deadline first: an aggregate's commands would come back
 * reversed. So the commands delivered before (stream sequence up to the
 * consumer's last delivered one when it was taken) are held until all of
 * them are back, or for `waitMs` (a holder still alive may acknowledge some),
 * then routed sorted by sequence; commands never delivered before, which
 * JetStream hands out in stream order and only after those, wait behind them.
 */
export class InheritedOrder {
  private readonly held: JsMsg[] = [];
  private readonly later: JsMsg[] = [];
  private open: boolean;
  private readonly timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly lastDelivered: number,
    private readonly unacknowledged: number,
    private readonly route: (m: JsMsg) => void,
    waitMs: number,
  ) {
    this.open = unacknowledged === 0;
    if (!this.open) {
      this.timer = setTimeout(() => this.release(), waitMs);
      this.timer.unref();
    }
  }

  push(m: JsMsg): void {
    if (this.open) {
      this.route(m);
      return;
    }
    if (m.seq <= this.lastDelivered) {
      this.held.push(m);
      if (this.held.length >= this.unacknowledged) this.release();
    } else {
      this.later.push(m);
    }
  }

  /** Routes what is held, in stream order, then what came after it; from now on every command goes straight through. */
  release(): void {
    if (this.open) return;
    this.open = true;
    clearTimeout(this.timer);
    for (const m of this.held.sort((a, b) => a.seq - b.seq)) this.route(m);
    for (const m of this.later) this.route(m);
    this.held.length = 0;
    this.later.length = 0;
  }
}
