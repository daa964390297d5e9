import type { Commit } from '../messages/wire.js';
import { subjects } from '../messages/wire.js';
import type { Clock } from '../platform/clock.js';
import { LogReactor, type ReactorContext } from './log-reactor.js';
import { Publisher } from './publish.js';

const CREATIONS = new Set(['CP', 'CLONE', 'MKFS']);
const LOCKED = new Set(['LOCKED', 'LOCKED_USED', 'LOCKED_USED_PERS']);

/**
 * Cross-aggregate process managers: what one aggregate's fact asks of
 * another becomes a command to it (origin release after a clone, datastore
 * membership, settling capacity reservations), and VM notifications go out on
 * imgr.vm.<vm>.<kind>.
 */
export class ProcessManager extends LogReactor {
  readonly name = 'imgr-process';
  private readonly out: Publisher;

  constructor(
    ctx: ReactorContext,
    private readonly clock: Clock,
  ) {
    super(ctx);
    this.out = new Publisher(ctx.nc, 'process-manager');
  }

  protected async react(commit: Commit, seq: number): Promise<void> {
    const at = this.clock.now();
    let i = 0;
    const id = (what: string): string => `pm-${seq}-${i++}-${what}`;
    for (const fact of commit.facts) {
      for (const e of fact.effects) {
        switch (e.kind) {
          case 'image.releaseCloneSource':
            await this.out.command({ type: 'image.cloneFinish', imageId: e.originId, clone: e.clone }, id('clone-finish'), commit, at);
            break;
          case 'datastore.imageAdded':
            await this.out.command({ type: 'datastore.addImage', datastoreId: e.datastoreId, imageId: e.imageId }, id('add'), commit, at);
            break;
          case 'datastore.imageRemoved':
            await this.out.command({ type: 'datastore.removeImage', datastoreId: e.datastoreId, imageId: e.imageId }, id('remove'), commit, at);
            break;
          case 'vm.diskReady':
          case 'vm.diskFailed':
            for (const vm of e.vmIds) this.ctx.nc.publish(subjects.vmNotice(vm, e.kind.slice(3)), JSON.stringify({ imageId: e.imageId, seq }));
            break;
          case 'vm.saveAsTransfer':
          case 'vm.saveAsCleared':
          case 'vm.flattenDone':
          case 'vm.backupRemoved':
            this.ctx.nc.publish(subjects.vmNotice(e.vmId, e.kind.slice(3)), JSON.stringify({ ...e, seq }));
            break;
          default:
            break;
        }
      }
      // §7.3: an incremental chain longer than the backup datastore's KEEP_LAST is flattened.
      if (commit.aggregate === 'image' && fact.type === 'image.incrementAdded') {
        const image = this.ctx.host.image(commit.id);
        const keepLast = Number.parseInt(image ? (this.ctx.host.datastore(image.datastore.id)?.template['KEEP_LAST'] ?? '') : '', 10);
        if (image && keepLast > 0 && image.increments.length > keepLast) {
          await this.out.command({ type: 'image.flattenIncrements', imageId: commit.id, keepLast }, id('flatten'), commit, at);
        }
      }
      // W38: a creation that ended (either way) no longer needs its reserved space.
      if (commit.aggregate === 'image') {
        const action = fact.detail['action'];
        const ended = fact.type === 'image.removed' || (LOCKED.has(fact.prevState) && typeof action === 'string' && CREATIONS.has(action));
        const ds = this.ctx.host.image(commit.id)?.datastore.id;
        const view = ds === undefined ? undefined : this.ctx.host.datastore(ds);
        if (ended && view?.reservations.some((r) => r.imageId === commit.id)) {
          await this.out.command({ type: 'datastore.settle', datastoreId: view.id, imageId: commit.id }, id('settle'), commit, at);
        }
      }
    }
  }
}
