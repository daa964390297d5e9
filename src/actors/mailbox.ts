/**
 * Runs tasks one at a time per key, in the order they were submitted, and
 * different keys in parallel: commands for one aggregate are decided in turn.
 * A task may name several keys (an operation that commits to several
 * aggregates): it runs after every earlier task of each of them, and every
 * later one waits for it. Chaining happens at submission, so no two tasks
 * can wait for each other.
 */
export class Mailboxes {
  private readonly tails = new Map<string, Promise<unknown>>();

  run<T>(keys: string | readonly string[], task: () => Promise<T>): Promise<T> {
    const unique = [...new Set(typeof keys === 'string' ? [keys] : keys)];
    const before = Promise.all(unique.map((k) => this.tails.get(k) ?? Promise.resolve()));
    const next = before.then(task);
    const settled = next.then(
      () => undefined,
      () => undefined,
    );
    for (const k of unique) {
      this.tails.set(k, settled);
      void settled.then(() => {
        if (this.tails.get(k) === settled) this.tails.delete(k);
      });
    }
    return next;
  }

  /** Whether a task of the key runs or waits. */
  busy(key: string): boolean {
    return this.tails.has(key);
  }

  get size(): number {
    return this.tails.size;
  }
}
