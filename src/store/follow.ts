import type { ConsumeOptions, ConsumerMessages, JetStreamClient, JetStreamManager, JsMsg } from '@nats-io/jetstream';
import type { Logger } from '../platform/logger.js';

/** How often a follower compares what it received with what the server holds. */
export const DEFAULT_STALL_CHECK_MS = 2_000;

export interface FollowerStats {
  /** Messages handed to the handler. */
  readonly received: number;
  /** Times the consumer was reopened because it had stopped receiving. */
  readonly restarts: number;
}

export interface Follower {
  readonly stats: FollowerStats;
  stop(): Promise<void>;
}

export interface FollowOptions {
  /** Names the follower in log lines. */
  readonly name: string;
  /** Creates (or looks up) the consumer and starts consuming; called again after a stall. */
  readonly open: () => Promise<ConsumerMessages>;
  /** A promise it returns is awaited before the next message (one at a time). */
  readonly onMessage: (m: JsMsg) => void | Promise<void>;
  /**
   * Asked when nothing arrived during a whole check interval: does the server
   * hold work this follower should have received by now?
   */
  readonly behind: () => Promise<boolean>;
  /** Called once a consumer is closed (before a reopen, and at stop): removes what `open` created. */
  readonly onClosed?: () => Promise<void>;
  readonly log: Logger;
  readonly checkMs?: number;
}

/**
 * A JetStream consumer that never stops silently. After a nats-server restart
 * the client's consumers can stay subscribed yet receive nothing (an ordered
 * consumer that was not recreated, a pull request the server forgot); nothing
 * in the client reports it. So every interval without a message the follower
 * asks the server whether it is behind, and after two such intervals in a row
 * it closes the consumer and opens it again, from where the handler stands.
 */
export async function follow(o: FollowOptions): Promise<Follower> {
  const checkMs = o.checkMs ?? DEFAULT_STALL_CHECK_MS;
  let received = 0;
  let restarts = 0;
  let stopping = false;
  let busy = false;
  let current: ConsumerMessages | undefined;
  let loop: Promise<void> = Promise.resolve();

  const run = (messages: ConsumerMessages): Promise<void> =>
    (async () => {
      try {
        for await (const m of messages) {
          if (messages !== current) break;
          received++;
          const r = o.onMessage(m);
          if (r !== undefined) {
            busy = true;
            await r.finally(() => (busy = false));
          }
        }
      } catch (e) {
        if (!stopping) o.log.warn({ err: e, follower: o.name }, 'consumer ended with an error; it will be reopened');
      }
    })();

  const open = async (): Promise<void> => {
    const messages = await o.open();
    current = messages;
    loop = run(messages);
  };

  await open();

  let seenAtCheck = received;
  let quietChecks = 0;
  let checking = false;
  const timer = setInterval(() => {
    if (checking || stopping) return;
    checking = true;
    void (async () => {
      try {
        if (received !== seenAtCheck || busy) {
          seenAtCheck = received;
          quietChecks = 0;
          return;
        }
        if (!(await o.behind())) {
          quietChecks = 0;
          return;
        }
        if (++quietChecks < 2) return;
        quietChecks = 0;
        restarts++;
        o.log.warn({ follower: o.name, received, restarts }, 'consumer stalled: the server holds messages it does not deliver; reopening it');
        const old = current;
        current = undefined;
        old?.stop();
        await o.onClosed?.().catch(() => undefined);
        await open();
      } catch (e) {
        // The server is away (a restart): the next check tries again.
        o.log.debug({ err: e, follower: o.name }, 'stall check failed');
      } finally {
        checking = false;
      }
    })();
  }, checkMs);
  timer.unref();

  return {
    get stats(): FollowerStats {
      return { received, restarts };
    },
    async stop(): Promise<void> {
      stopping = true;
      clearInterval(timer);
      const m = current;
      current = undefined;
      await m?.close().catch(() => undefined);
      await loop;
      await o.onClosed?.().catch(() => undefined);
    },
  };
}

/**
 * A durable pull consumer under the same supervision. It is behind when the
 * server holds messages not yet delivered, has room to deliver them (ack
 * pending below its limit) and no pull request of ours is waiting: the client
 * believes it is pulling, the server knows of no pull.
 */
export function followDurable(
  js: JetStreamClient,
  jsm: JetStreamManager,
  o: { stream: string; durable: string; consume: ConsumeOptions; onMessage: (m: JsMsg) => void | Promise<void>; log: Logger; checkMs?: number },
): Promise<Follower> {
  return follow({
    name: `${o.stream}/${o.durable}`,
    log: o.log,
    ...(o.checkMs !== undefined ? { checkMs: o.checkMs } : {}),
    open: async () => (await js.consumers.get(o.stream, o.durable)).consume(o.consume),
    onMessage: o.onMessage,
    behind: async () => {
      const ci = await jsm.consumers.info(o.stream, o.durable);
      const room = ci.config.max_ack_pending === undefined || ci.config.max_ack_pending < 0 || ci.num_ack_pending < ci.config.max_ack_pending;
      return ci.num_pending > 0 && room && ci.num_waiting === 0;
    },
  });
}

/** A nak on a connection that is gone throws; redelivery after ack_wait does the same job. */
export function nakQuietly(m: JsMsg, delayMs: number): void {
  try {
    m.nak(delayMs);
  } catch {
    // The connection closed: the server redelivers once ack_wait passes.
  }
}
