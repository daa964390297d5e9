/**
 * Work in arrival order within a key, keys side by side. A reactor's commits
 * on one aggregate must be reacted to in log order (a cleanup after a copy,
 * not before it), but commits on different aggregates are independent, and
 * taking them one at a time across the whole log costs a round trip each.
 */
export class Lanes<T> {
  private readonly lanes = new Map<string, T[]>();
  private readonly running = new Set<Promise<void>>();

  /**
   * `work` runs on one item at a time per key. A lane stops taking items
   * once `halted` says so; what it holds then is dropped. An error `work`
   * throws goes to `failed` and the lane goes on.
   */
  constructor(
    private readonly work: (item: T) => Promise<void>,
    private readonly halted: () => boolean,
    private readonly failed: (e: unknown) => void,
  ) {}

  push(key: string, item: T): void {
    const lane = this.lanes.get(key);
    if (lane) {
      lane.push(item);
      return;
    }
    const fresh = [item];
    this.lanes.set(key, fresh);
    const run = this.drain(key, fresh);
    this.running.add(run);
    void run.finally(() => this.running.delete(run));
  }

  /** Resolves once every lane has finished (or, halted, dropped) what it held. */
  async idle(): Promise<void> {
    while (this.running.size > 0) await Promise.all(this.running);
  }

  private async drain(key: string, lane: T[]): Promise<void> {
    try {
      while (lane.length > 0 && !this.halted()) {
        await this.work(lane[0] as T).catch(this.failed);
        lane.shift();
      }
    } finally {
      this.lanes.delete(key);
    }
  }
}
