/**
 * The cost of one decision: decideImage (machine transition + fact building +
 * diff) against XState's bare pure transition() of the same machine.
 */
import { transition } from 'xstate';
import { imageMachine } from '../src/machines/image/image.machine.js';
import { decideImage, initialImage, type ImageAggregate } from '../src/machines/image/decide.js';
import { decisionContext, type ImageEvent } from '../src/machines/image/events.js';
import { ImageCommandSchema, type ImageCommandInput } from '../src/messages/image-commands.js';
import { measure, type Result } from './harness.js';

const actor = { uid: 0, gid: 0, name: 'oneadmin', service: 'bench' };
const ds = { id: 1, name: 'default', type: 'IMAGE_DS' as const, dsMad: 'fs', tmMad: 'shared', diskType: 'FILE', driver: '', persistentOnly: false, availableMb: null, bridgeList: '', keepLast: null };
const ev = (c: ImageCommandInput, i: number): ImageEvent => ({ ...ImageCommandSchema.parse(c), meta: { commandId: `b-${i}`, at: 1_800_000_000_000 + i, actor }, ctx: decisionContext({ datastore: ds }) });

export async function run(ms: number): Promise<Result[]> {
  const created = decideImage(initialImage(1), ev({ type: 'image.allocate', imageId: 1, datastoreId: 1, template: { NAME: 'b', SOURCE: '/s', FORMAT: 'raw', SIZE: '1', PERSISTENT: 'YES', PERSISTENT_TYPE: 'SHAREABLE' } }, 0));
  if (!created.ok) throw new Error('setup refused');
  let agg: ImageAggregate = created.next;
  const acquire = (i: number) => ev({ type: 'image.acquire', imageId: 1, vmId: i % 50, mode: 'deploy' }, i);
  const release = (i: number) => ev({ type: 'image.release', imageId: 1, vmId: i % 50 }, i);

  const decide = await measure('decide one command', 'decideImage (imgr)', ms, (i) => {
    const d = decideImage(agg, i % 2 === 0 ? acquire(i) : release(i));
    if (d.ok) agg = d.next;
  });
  const snapshot = imageMachine.resolveState({ value: agg.state, context: agg.record });
  const bare = await measure('decide one command', 'xstate transition() (baseline)', ms, (i) => transition(imageMachine, snapshot, acquire(i)));
  return [decide, bare];
}
