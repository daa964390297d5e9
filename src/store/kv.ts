import type { KV } from '@nats-io/kv';
import { isWrongLastSequence } from './errors.js';

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

/**
 * Writes a value tagged with the log sequence it reflects, unless the bucket
 * already holds one reflecting a later sequence: several managers share the
 * snapshot bucket, and one that lags must never put an older state over a
 * newer one. Compare-and-set on the revision; `revisions` remembers what this
 * writer last wrote, so an uncontended write costs one request.
 */
export async function putIfNewer(kv: KV, key: string, value: string, seq: number, seqOf: (text: string) => number, revisions: Map<string, number>): Promise<void> {
  for (let attempt = 0; attempt < 5; attempt++) {
    const known = revisions.get(key);
    const written = known === undefined ? await createIfAbsent(kv, key, value) : await updateAt(kv, key, value, known);
    if (written !== undefined) {
      revisions.set(key, written);
      return;
    }
    const current = await kv.get(key);
    if (current?.operation === 'PUT' && seqOf(current.string()) >= seq) {
      revisions.set(key, current.revision);
      return;
    }
    if (current) revisions.set(key, current.revision);
    else revisions.delete(key);
  }
  throw new Error(`${key}: five writers in a row changed it under this one`);
}


/** Creates the key; its new revision, or undefined when the key holds a value already. */
export async function createIfAbsent(kv: KV, key: string, value: string): Promise<number | undefined> {
  try {
    return await kv.create(key, value);
  } catch (e) {
    if (isWrongLastSequence(e)) return undefined;
    throw e;
  }
}

/** Replaces the value at `revision`; its new revision, or undefined when another write came first. */
export async function updateAt(kv: KV, key: string, value: string, revision: number): Promise<number | undefined> {
  try {
    return await kv.update(key, value, revision);
  } catch (e) {
    if (isWrongLastSequence(e)) return undefined;
    throw e;
  }
}
