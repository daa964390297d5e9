/**
 * How far a reactor is done with the log: commits are handed in log order
 * and finish in any order (lanes run side by side); the watermark is the
 * highest sequence up to which every handed commit has finished, which is
 * where the reactor resumes after a restart.
 */
export class Watermark {
  private readonly pending: number[] = [];
  private head = 0;
  private readonly finished = new Set<number>();
  private mark: number;

  constructor(start: number) {
    this.mark = start;
  }

  get value(): number {
    return this.mark;
  }

  /** Commits handed and not finished. */
  get open(): number {
    return this.pending.length - this.head - this.finished.size;
  }

  /** A commit handed on; sequences must increase. */
  handed(seq: number): void {
    const last = this.pending.length > this.head ? (this.pending[this.pending.length - 1] ?? this.mark) : this.mark;
    if (seq <= last) throw new Error(`commit ${seq} handed after ${last}`);
    this.pending.push(seq);
  }

  finish(seq: number): void {
    this.finished.add(seq);
    while (this.head < this.pending.length) {
      const first = this.pending[this.head] ?? 0;
      if (!this.finished.delete(first)) break;
      this.mark = first;
      this.head += 1;
    }
    // The queue is compacted now and then, not on every step.
    if (this.head > 1024 && this.head * 2 > this.pending.length) {
      this.pending.splice(0, this.head);
      this.head = 0;
    }
  }
}
