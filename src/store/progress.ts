/** How far a log follower has applied the log, and promises that resolve once it got somewhere. */
export class LogProgress {
  private seq = 0;
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
    return new Promise((resolve) => this.waiters.push({ seq, resolve }));
  }

  advance(seq: number): void {
    if (seq <= this.seq) return;
    this.seq = seq;
    for (let i = this.waiters.length - 1; i >= 0; i--) {
      const w = this.waiters[i];
      if (w && w.seq <= seq) {
        this.waiters.splice(i, 1);
        w.resolve();
      }
    }
  }

  /** Moves the starting point before anything is applied (a checkpoint loaded at boot). */
  reset(seq: number): void {
    this.seq = seq;
  }
}
