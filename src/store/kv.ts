import type { KV } from '@nats-io/kv';

/** Calls `onValue` for every key that holds a value now (one watch over the bucket's current values). */
export async function readBucket(kv: KV, onValue: (key: string, text: string) => void): Promise<void> {
  if ((await kv.status()).values === 0) return;
  const w = await kv.watch();
  for await (const e of w) {
    if (e.operation === 'PUT') onValue(e.key, e.string());
    if (e.delta === 0) break;
  }
  w.stop();
}
