import type { KV } from '@nats-io/kv';
import { safeJson } from '../platform/json.js';
import type { Logger } from '../platform/logger.js';
import { OutcomeSchema, type Outcome } from '../messages/wire.js';
import { createIfAbsent, updateAt } from '../store/kv.js';

/**
 * The outcome bucket: idempotency beyond the stream's de-duplication window,
 * one outcome per command id, ever. Values are created, never put: an
 * acceptance is a commit in the log, so it is kept over a refusal that a
 * manager decided on older state; a refusal is kept only when nothing is.
 */
export class Outcomes {
  constructor(
    private readonly kv: KV,
    private readonly log: Logger,
  ) {}

  /** The outcome kept for a command id, if any reads. */
  async get(commandId: string): Promise<Outcome | undefined> {
    return (await this.read(commandId))?.outcome;
  }

  /** Keeps an acceptance; it replaces a stored refusal and leaves a stored acceptance as it is. */
  async accepted(commandId: string, outcome: Outcome): Promise<void> {
    for (let attempt = 0; attempt < 5; attempt++) {
      if (await this.create(commandId, outcome)) return;
      const stored = await this.read(commandId);
      if (!stored) continue;
      if (stored.outcome?.status === 'accepted') return;
      // Another actor's refusal under the id stays its record; this commit is in the log all the same.
      if (stored.outcome?.fingerprint !== undefined && stored.outcome.fingerprint !== outcome.fingerprint) return;
      if (await this.replace(commandId, outcome, stored.revision)) {
        this.log.warn({ commandId, replaced: stored.outcome?.status ?? 'unreadable' }, 'a command committed in the log had another outcome stored; the commit replaces it');
        return;
      }
    }
    throw new Error(`outcome of ${commandId}: it kept changing under this writer`);
  }

  /** Keeps a refusal unless an outcome is kept already; returns the one kept. */
  async refusal(commandId: string, outcome: Outcome): Promise<Outcome> {
    for (let attempt = 0; attempt < 5; attempt++) {
      if (await this.create(commandId, outcome)) return outcome;
      const stored = await this.read(commandId);
      if (stored?.outcome) return stored.outcome;
      if (stored && (await this.replace(commandId, outcome, stored.revision))) return outcome;
    }
    throw new Error(`outcome of ${commandId}: it kept changing under this writer`);
  }

  private async create(commandId: string, outcome: Outcome): Promise<boolean> {
    return (await createIfAbsent(this.kv, commandId, JSON.stringify(outcome))) !== undefined;
  }

  private async replace(commandId: string, outcome: Outcome, revision: number): Promise<boolean> {
    return (await updateAt(this.kv, commandId, JSON.stringify(outcome), revision)) !== undefined;
  }

  private async read(commandId: string): Promise<{ outcome: Outcome | undefined; revision: number } | undefined> {
    const e = await this.kv.get(commandId);
    if (!e || e.operation !== 'PUT') return undefined;
    const r = OutcomeSchema.safeParse(safeJson(e.string()));
    return { outcome: r.success ? r.data : undefined, revision: e.revision };
  }
}
