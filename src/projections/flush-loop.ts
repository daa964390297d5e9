/**
 * Runs `flush` whenever work is marked, one flush at a time: work marked
 * while a flush runs starts the next one once it ends and `spacingMs` has
 * passed since it started. Under load a flush takes everything that came in
 * meanwhile, so writes batch themselves (an image changed twice is written
 * once); when idle, a single change is written at once.
 */
export class FlushLoop {
  private running: Promise<void> | undefined;
  /** Kicks so far: one that came during a flush asks for another. */
  private kicks = 0;

  constructor(
    private readonly flush: () => Promise<void>,
    private readonly onError: (e: unknown) => void,
    private readonly spacingMs = 0,
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
      const started = performance.now();
      try {
        await this.flush();
      } catch (e) {
        this.onError(e);
      }
      if (this.kicks === seen) break;
      // A timer may fire a fraction of a millisecond early (whole milliseconds): wait again until the spacing has passed.
      for (let wait = this.spacingMs - (performance.now() - started); wait > 0; wait = this.spacingMs - (performance.now() - started)) {
        await new Promise((r) => setTimeout(r, Math.ceil(wait)));
      }
    }
    // Synchronous with the last check above: a kick after this starts a new loop.
    this.running = undefined;
  }
}
