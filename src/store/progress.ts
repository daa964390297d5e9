/** How far a log follower has applied the log, and promises that resolve once it got somewhere. */
export class LogProgress {
  private seq = 0;
  /** Sorted by seq: an advance resolves a prefix (hundreds wait at once under a pipelined reactor). */
  private readonly waiters: { seq: number; resolve: () => void }[] = [];

  constructor(start = 0) {
    this.seq = start;
  }

  get applied(): number {
    return this.seq;
  }

  /** Resolves once everything up to `seq` is applied. */
  waitFor(seq: number): Promise<void> {
    if (this.seq >= seq) return Promise.resolve();
    return new Promise((resolve) => {
      let i = this.waiters.length;
      while (i > 0 && (this.waiters[i - 1]?.seq ?? 0) > seq) i--;
      this.waiters.splice(i, 0, { seq, resolve });
    });
  }

  advance(seq: number): void {
    if (seq <= this.seq) return;
    this.seq = seq;
    let n = 0;
    while (n < this.waiters.length && (this.waiters[n]?.seq ?? Infinity) <= seq) n++;
    for (const w of this.waiters.splice(0, n)) w.resolve();
  }

  /** Moves the starting point before anything is applied (a checkpoint loaded at boot). */
  reset(seq: number): void {
    this.seq = seq;
  }
}
