import type { KV } from '@nats-io/kv';
import type { Logger } from '../platform/logger.js';
import { DEFAULT_PRINCIPALS, PRINCIPALS_KEY, PrincipalsSchema, type Principal, type Principals } from '../platform/principals.js';
import { safeJson } from '../platform/json.js';

/**
 * The principals the manager knows, from imgr_meta (`imgr principal add`
 * writes them), followed live so an added principal works without a restart.
 * A fresh store gets the default administrator.
 */
export class PrincipalRegistry {
  private current: Principals = {};
  private stopWatch: (() => void) | undefined;

  private constructor(private readonly log: Logger) {}

  static async start(meta: KV, log: Logger): Promise<PrincipalRegistry> {
    const r = new PrincipalRegistry(log);
    await meta.create(PRINCIPALS_KEY, JSON.stringify(DEFAULT_PRINCIPALS)).catch(() => undefined);
    const e = await meta.get(PRINCIPALS_KEY);
    if (e?.operation === 'PUT') r.load(e.string());
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

  stop(): void {
    this.stopWatch?.();
  }

  private load(text: string): void {
    const p = PrincipalsSchema.safeParse(safeJson(text));
    if (p.success) this.current = p.data;
    else this.log.error({ issues: p.error.issues.slice(0, 3) }, 'unreadable principals in imgr_meta: keeping the ones before');
  }
}
