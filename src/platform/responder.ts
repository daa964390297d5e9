import type { Msg, NatsConnection, Subscription } from '@nats-io/transport-node';
import { connectAs, inboxPrefixFor } from './nats.js';
import type { Logger } from './logger.js';

/** One query as its answerer sees it: who asks (from the subject the server enforced), the subject's tokens, the body. */
export interface Query {
  readonly asker: string;
  readonly tokens: readonly string[];
  readonly data: Uint8Array;
  text(): string;
  /** A header of the request; what it says is a claim, to be checked against the asker's grant. */
  header(name: string): string | undefined;
}

/** The answer's body, or undefined for none (the asker times out). */
export type Answer = string | undefined;

/**
 * Answers queries. A request's reply subject is chosen by whoever asks, and
 * whatever connection answers publishes there with its own rights: answered
 * from a role's connection (the manager may write to every stream and
 * bucket), a reply set to `$JS.API.STREAM.PURGE.…` or `$KV.imgr_meta.…` made
 * imgr write for the asker. So answers never leave from a role's connection:
 * a Responder has one of its own, as the NATS user `responder`, which may
 * publish to inboxes only, and every answer goes to the asker's own inbox
 * (`_INBOX.<asker>.`, the asker being the user the subject names); any other
 * reply subject is not answered.
 */
export class Responder {
  private readonly subs: Subscription[] = [];

  private constructor(
    readonly nc: NatsConnection,
    private readonly log: Logger,
  ) {}

  static async connect(servers: string, name: string, log: Logger): Promise<Responder> {
    return new Responder(await connectAs('responder', servers, name), log);
  }

  /**
   * Subscribes `pattern` (whose third token is the asker: `imgr.query.<asker>.…`)
   * in queue group `queue` and answers each query with `answer`'s result.
   */
  serve(pattern: string, queue: string, answer: (q: Query) => Answer | Promise<Answer>): Subscription {
    const sub = this.nc.subscribe(pattern, {
      queue,
      callback: (err, m) => {
        if (err) return;
        const reply = replyFor(m);
        if (reply === undefined) {
          this.log.warn({ subject: m.subject, reply: m.reply }, 'a query whose reply subject is not its asker\'s inbox was not answered');
          return;
        }
        const tokens = m.subject.split('.');
        const q: Query = { asker: tokens[2] ?? '', tokens, data: m.data, text: () => m.string(), header: (name) => (m.headers?.has(name) === true ? m.headers.get(name) : undefined) };
        Promise.resolve()
          .then(() => answer(q))
          .then(
            (body) => {
              if (body !== undefined && !this.nc.isClosed()) this.nc.publish(reply, body);
            },
            (e: unknown) => this.log.warn({ err: e, subject: m.subject }, 'a query failed; its asker times out'),
          );
      },
    });
    this.subs.push(sub);
    return sub;
  }

  /** Stops answering; the connection stays for the caller to close. */
  unsubscribe(): void {
    for (const s of this.subs.splice(0)) s.unsubscribe();
  }

  async close(): Promise<void> {
    this.unsubscribe();
    if (!this.nc.isClosed()) await this.nc.drain();
  }
}

/** Where a query's answer may go: its asker's own inbox, or nowhere. */
export function replyFor(m: Pick<Msg, 'subject' | 'reply'>): string | undefined {
  const asker = m.subject.split('.')[2];
  if (asker === undefined || asker === '' || m.reply === undefined) return undefined;
  return m.reply.startsWith(`${inboxPrefixFor(asker)}.`) ? m.reply : undefined;
}
