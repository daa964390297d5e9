import type { KV } from '@nats-io/kv';
import type { Logger } from '../platform/logger.js';
import { DEFAULT_PRINCIPALS, PRINCIPALS_KEY, readPrincipals, type Principal, type Principals } from '../platform/principals.js';
import { safeJson } from '../platform/json.js';

/** A principal by name: known, refused (with why), or unknown. */
export type PrincipalLookup = Principal | { readonly refused: string } | undefined;

/**
 * The principals the manager knows, from imgr_meta (`imgr principal add`
 * writes them), followed live so an added principal works without a restart.
 * A fresh store gets the default administrator. An entry that is not
 * consistent (gid 0 without admin, say) is refused, alone: its principal's
 * commands are refused with the reason, the other principals go on.
 */
export class PrincipalRegistry {
  private current: Principals = {};
  private refused: Record<string, string> = {};
  private stopWatch: (() => void) | undefined;

  private constructor(private readonly log: Logger) {}

  static async start(meta: KV, log: Logger): Promise<PrincipalRegistry> {
    const r = new PrincipalRegistry(log);
    await meta.create(PRINCIPALS_KEY, JSON.stringify(DEFAULT_PRINCIPALS)).catch(() => undefined);
    const e = await meta.get(PRINCIPALS_KEY);
    if (e?.operation === 'PUT' && !r.load(e.string())) await r.loadLastReadable(meta);
    const w = await meta.watch({ key: PRINCIPALS_KEY, include: 'updates' });
    r.stopWatch = () => w.stop();
    void (async () => {
      for await (const u of w) if (u.operation === 'PUT') r.load(u.string());
    })();
    return r;
  }

  get(name: string): Principal | undefined {
    return Object.hasOwn(this.current, name) ? this.current[name] : undefined;
  }

  /** The principal of that name, or why its entry is refused; undefined when there is none. */
  lookup(name: string): PrincipalLookup {
    if (Object.hasOwn(this.refused, name)) return { refused: this.refused[name] ?? '' };
    return this.get(name);
  }

  stop(): void {
    this.stopWatch?.();
  }

  /**
   * An unreadable value found at start: the newest readable one the bucket
   * still keeps (imgr_meta keeps five per key) stands in, so a bad write
   * never leaves every principal unknown.
   */
  private async loadLastReadable(meta: KV): Promise<void> {
    const values: string[] = [];
    for await (const h of await meta.history({ key: PRINCIPALS_KEY })) if (h.operation === 'PUT') values.push(h.string());
    for (const text of values.reverse()) {
      if (readPrincipals(safeJson(text)) !== undefined) {
        this.load(text);
        this.log.error('the principals in imgr_meta are unreadable: the last readable ones stand in until they are written again (imgr principal add)');
        return;
      }
    }
    this.log.error('the principals in imgr_meta are unreadable and no earlier value is: every principal is unknown until they are written again (imgr principal add)');
  }

  /** Takes a value of the principals key; false (and the ones before kept) when it is unreadable. */
  private load(text: string): boolean {
    const read = readPrincipals(safeJson(text));
    if (read === undefined) {
      this.log.error('unreadable principals in imgr_meta: keeping the ones before');
      return false;
    }
    this.current = read.principals;
    this.refused = read.refused;
    for (const [name, why] of Object.entries(read.refused)) this.log.error({ principal: name, why }, 'principal refused: its commands are refused until its entry is fixed');
    return true;
  }
}
