/**
 * Runs `flush` whenever work is marked, one flush at a time: work marked
 * while a flush runs starts the next one as soon as it ends. Under load a
 * flush takes everything that came in during the previous one, so writes
 * batch themselves; when idle, a single change is written at once.
 */
export class FlushLoop {
  private running: Promise<void> | undefined;
  /** Kicks so far: one that came during a flush asks for another. */
  private kicks = 0;

  constructor(
    private readonly flush: () => Promise<void>,
    private readonly onError: (e: unknown) => void,
  ) {}

  kick(): void {
    this.kicks += 1;
    this.running ??= this.loop();
  }

  /** Resolves once no flush runs and none is due. */
  async idle(): Promise<void> {
    while (this.running) await this.running;
  }

  private async loop(): Promise<void> {
    for (let seen = this.kicks; ; seen = this.kicks) {
      try {
        await this.flush();
      } catch (e) {
        this.onError(e);
      }
      if (this.kicks === seen) break;
    }
    // Synchronous with the last check above: a kick after this starts a new loop.
    this.running = undefined;
  }
}
