import { createInbox, type Msg, type NatsConnection, type Subscription } from '@nats-io/transport-node';

/** A reply awaited on the inbox: the subject to name as replyTo, and the first message there. */
export interface AwaitedReply {
  readonly subject: string;
  /** The reply, or undefined once the wait timed out or was cancelled; it never rejects. */
  readonly reply: Promise<Msg | undefined>;
  cancel(): void;
}

/**
 * One subscription (`<prefix>.<unique>.*`) for every outcome a client waits
 * for. A subscription per command cost the server two interest changes per
 * command and the client a subscription object each; here each command gets
 * its own last token and a table entry.
 */
export class ReplyInbox {
  private readonly base: string;
  private sub: Subscription | undefined;
  private next = 0;
  private readonly waiting = new Map<string, (m: Msg | undefined) => void>();

  constructor(
    private readonly nc: NatsConnection,
    prefix: string,
  ) {
    this.base = createInbox(prefix);
  }

  expect(timeoutMs: number): AwaitedReply {
    this.sub ??= this.nc.subscribe(`${this.base}.*`, {
      callback: (err, m) => {
        if (err) return;
        this.waiting.get(m.subject)?.(m);
      },
    });
    const subject = `${this.base}.${(this.next++).toString(36)}`;
    let settle: (m: Msg | undefined) => void = () => undefined;
    const reply = new Promise<Msg | undefined>((resolve) => {
      const timer = setTimeout(() => settle(undefined), timeoutMs);
      settle = (m) => {
        clearTimeout(timer);
        this.waiting.delete(subject);
        resolve(m);
      };
    });
    this.waiting.set(subject, settle);
    return { subject, reply, cancel: () => settle(undefined) };
  }

  /** Commands still waiting for their outcome. */
  get size(): number {
    return this.waiting.size;
  }
}
