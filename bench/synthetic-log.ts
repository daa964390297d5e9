/**
 * A log of a pool, written straight into IMGR_EVT for the scenarios that
 * start from history (rebuild, boot): each image is registered into one
 * datastore and then acquired and released by VMs, the facts decided by the
 * real image machine. One image's commits are decided once and copied to
 * the others with their ids changed, so a log of a million facts takes
 * seconds to write instead of the minutes a million decisions would.
 */
import type { JetStreamClient, JetStreamManager } from '@nats-io/jetstream';
import type { KV } from '@nats-io/kv';
import { writePosition } from '../src/reactors/reactor-position.js';
import { DISPATCH_DURABLE } from '../src/reactors/dispatcher.js';
import { PROCESS_DURABLE } from '../src/reactors/process-manager.js';
import { STREAMS } from '../src/store/provision.js';
import { decideImage, initialImage, type ImageAggregate } from '../src/machines/image/decide.js';
import { decisionContext, type ImageEvent } from '../src/machines/image/events.js';
import { ImageCommandSchema, type ImageCommandInput } from '../src/messages/image-commands.js';
import { subjects, type Commit } from '../src/messages/wire.js';
import { commitHeaders } from '../src/store/event-store.js';

/** An id no real field holds, replaced by each image's own. */
const SENTINEL = 987_654_321;
const WINDOW = 512;
const actor = { uid: 0, gid: 0, name: 'oneadmin', service: 'bench' };

/** The commits of one image with id SENTINEL in datastore `datastoreId`: its creation then `facts - 1` acquires and releases. */
function imageHistory(datastoreId: number, facts: number): string[] {
  const ds = { id: datastoreId, name: 'bench', type: 'IMAGE_DS' as const, dsMad: 'dummy', tmMad: 'shared', diskType: 'FILE', driver: '', persistentOnly: false, availableMb: null, bridgeList: '', keepLast: null };
  let agg: ImageAggregate = initialImage(SENTINEL);
  const out: string[] = [];
  for (let i = 0; i < facts; i++) {
    const input: ImageCommandInput =
      i === 0
        ? { type: 'image.allocate', imageId: SENTINEL, datastoreId, template: { NAME: `img-${SENTINEL}`, SOURCE: `/s/${SENTINEL}`, FORMAT: 'raw', SIZE: '1', PERSISTENT: 'YES', PERSISTENT_TYPE: 'SHAREABLE' } }
        : i % 2 === 1
          ? { type: 'image.acquire', imageId: SENTINEL, vmId: i, mode: 'deploy' }
          : { type: 'image.release', imageId: SENTINEL, vmId: i - 1 };
    const commandId = `bench-${SENTINEL}-${i}`;
    const event: ImageEvent = { ...ImageCommandSchema.parse(input), meta: { commandId, at: 1_800_000_000_000 + i, actor }, ctx: decisionContext({ datastore: ds }) };
    const d = decideImage(agg, event);
    if (!d.ok) throw new Error(`synthetic history refused: ${d.rejection.message}`);
    agg = d.next;
    const commit: Commit = { v: 1, aggregate: 'image', id: SENTINEL, commandId, correlationId: commandId, causationId: null, actor, at: event.meta.at, prev: '', facts: [d.fact] };
    out.push(JSON.stringify(commit));
  }
  return out;
}

/**
 * Appends `images` images of `factsPerImage` facts each (interleaved, as a
 * busy pool's log is) with ids from `firstId`, `WINDOW` publishes in flight.
 * Returns the number of facts written.
 */
export async function writeSyntheticPool(js: JetStreamClient, o: { datastoreId: number; firstId: number; images: number; factsPerImage: number }): Promise<number> {
  const history = imageHistory(o.datastoreId, o.factsPerImage).map((text) => text.split(String(SENTINEL)));
  const outstanding = new Set<Promise<unknown>>();
  let n = 0;
  for (const parts of history) {
    for (let k = 0; k < o.images; k++) {
      const id = o.firstId + k;
      const text = parts.join(String(id));
      // Headers as a manager writes them: a reader takes the commit in this code's own shape without the schema.
      const p = js.publish(subjects.event('image', id), text, { headers: commitHeaders(JSON.parse(text) as Commit) }).finally(() => outstanding.delete(p));
      outstanding.add(p);
      n += 1;
      if (outstanding.size >= WINDOW) await Promise.race(outstanding);
    }
  }
  await Promise.all(outstanding);
  return n;
}

/**
 * A real pool's reactors reacted to its history as it happened: store their
 * positions at the synthetic history's end, as they would stand, instead of
 * leaving them the whole history to read.
 */
export async function reactorsPastHistory(jsm: JetStreamManager, meta: KV): Promise<void> {
  const last = (await jsm.streams.info(STREAMS.events)).state.last_seq;
  for (const reactor of [DISPATCH_DURABLE, PROCESS_DURABLE]) await writePosition(meta, reactor, last);
}
