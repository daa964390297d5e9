/**
 * Every finished copy asks for a monitor of its datastore (§12: oned probes
 * the datastore after a CP), so a burst of registrations asked for as many
 * monitors, each a driver run and a datastore commit, queued on the one
 * datastore ahead of the registrations themselves (1,000 registrations made
 * 663 monitors). A monitor only refreshes counters, so per datastore at most
 * one is sent per window; the requests inside a window become one trailing
 * monitor at its end, and the last copy of a burst is still followed by one.
 */
export class MonitorCoalescer {
  private readonly windows = new Map<number, { until: number; trailing: { requestId: string; seq: number } | null; timer: NodeJS.Timeout | undefined }>();

  constructor(
    private readonly windowMs: number,
    private readonly send: (datastoreId: number, requestId: string, seq: number) => Promise<void>,
    private readonly onError: (e: unknown) => void,
  ) {}

  async request(datastoreId: number, requestId: string, seq: number): Promise<void> {
    const now = Date.now();
    const w = this.windows.get(datastoreId);
    if (!w || now >= w.until) {
      this.windows.set(datastoreId, { until: now + this.windowMs, trailing: null, timer: undefined });
      await this.send(datastoreId, requestId, seq);
      return;
    }
    if (!w.trailing) {
      w.timer = setTimeout(() => this.fire(datastoreId), w.until - now);
      w.timer.unref();
    }
    w.trailing = { requestId, seq };
  }

  stop(): void {
    for (const w of this.windows.values()) clearTimeout(w.timer);
    this.windows.clear();
  }

  private fire(datastoreId: number): void {
    const t = this.windows.get(datastoreId)?.trailing;
    if (!t) return;
    this.windows.set(datastoreId, { until: Date.now() + this.windowMs, trailing: null, timer: undefined });
    this.send(datastoreId, t.requestId, t.seq).catch(this.onError);
  }
}
