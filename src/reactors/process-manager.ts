import type { Commit } from '../messages/wire.js';
import { subjects } from '../messages/wire.js';
import type { Clock } from '../platform/clock.js';
import { followUpCommand } from '../machines/effect-commands.js';
import { LogReactor, type ReactorContext } from './log-reactor.js';
import { Publisher } from './publish.js';
import { failpoint } from '../platform/failpoint.js';

/** The reactor's durable on IMGR_EVT (nats.conf lets the manager role alone pull from it). */
export const PROCESS_DURABLE = 'imgr-process';

/**
 * Turns the effects of facts into what they ask for, and decides nothing:
 * follow-up effects become internal commands (the table in
 * machines/effect-commands.ts) with ids derived from the commit, VM
 * notifications go out on imgr.vm.<vm>.<kind>.
 */
export class ProcessManager extends LogReactor {
  readonly name = PROCESS_DURABLE;
  protected override readonly effectsOnly = true;
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
    for (const fact of commit.facts) {
      for (const e of fact.effects) {
        switch (e.kind) {
          case 'vm.diskReady':
          case 'vm.diskFailed':
            for (const vm of e.vmIds) this.ctx.nc.publish(subjects.vmNotice(vm, e.kind.slice(3)), JSON.stringify({ imageId: e.imageId, seq }));
            continue;
          case 'vm.saveAsTransfer':
          case 'vm.saveAsCleared':
          case 'vm.flattenDone':
          case 'vm.backupRemoved':
            this.ctx.nc.publish(subjects.vmNotice(e.vmId, e.kind.slice(3)), JSON.stringify({ ...e, seq }));
            continue;
          default: {
            const f = followUpCommand(e);
            if (!f) continue;
            failpoint(`before-follow-up:${e.kind}`);
            await this.out.command(f.command, `pm-${seq}-${i++}-${f.what}`, commit, at, f.actor);
            failpoint(`after-follow-up:${e.kind}`);
          }
        }
      }
    }
  }
}
