import type { Effect, JoinedEffect } from '../messages/effects.js';
import { CommandSchema, type Command, type CommandInput } from '../messages/wire.js';
import type { Actor } from '../messages/envelope.js';

/**
 * The one table from effect to command. Joined effects become commands the
 * aggregate host decides and commits together with the fact that asked for
 * them; follow-up effects become internal commands a reactor publishes once
 * the fact is in the log. Nothing here decides: the machines chose the
 * effect and its data.
 */
export const joinedCommand = (e: JoinedEffect): Command => CommandSchema.parse(joinedInput(e));

function joinedInput(e: JoinedEffect): CommandInput {
  switch (e.kind) {
    case 'datastore.reserveSpace':
      return { type: 'datastore.reserve', datastoreId: e.datastoreId, imageId: e.imageId, sizeMb: e.sizeMb, skipCapacityCheck: e.skipCapacityCheck };
    case 'image.holdCloneSource':
      return { type: 'image.cloneStart', imageId: e.originId, clone: e.clone };
  }
}

/** A command a reactor sends for an effect, as imgr or (`actor`) as the user it acts for. */
export interface FollowUp {
  readonly command: CommandInput;
  /** A short name for the command id the reactor derives from the fact. */
  readonly what: string;
  readonly actor?: Actor;
}

export function followUpCommand(e: Effect): FollowUp | null {
  switch (e.kind) {
    case 'image.releaseCloneSource':
      return { what: 'clone-finish', command: { type: 'image.cloneFinish', imageId: e.originId, clone: e.clone } };
    case 'datastore.releaseSpace':
      return { what: 'settle', command: { type: 'datastore.settle', datastoreId: e.datastoreId, imageId: e.imageId } };
    case 'image.createBackup':
      return {
        what: 'backup',
        command: {
          type: 'image.allocateBackup',
          imageId: e.imageId,
          datastoreId: e.datastoreId,
          vmId: e.vmId,
          source: e.source,
          sizeMb: e.sizeMb,
          format: e.format,
          diskIds: [0],
          selectedDisks: false,
          incremental: e.incremental,
          backupJobId: null,
          owner: e.owner,
        },
      };
    case 'image.extendBackup':
      return { what: 'increment', command: { type: 'image.addIncrement', imageId: e.imageId, source: e.source, sizeMb: e.sizeMb } };
    case 'image.flattenIncrements':
      return { what: 'flatten', command: { type: 'image.flattenIncrements', imageId: e.imageId, keepLast: e.keepLast } };
    case 'image.registerRestored':
      return {
        what: `restore-${e.imageId}`,
        command: { type: 'image.allocate', imageId: e.imageId, datastoreId: e.datastoreId, template: e.template, skipCapacityCheck: false },
        actor: { uid: e.owner.uid, gid: e.owner.gid, name: e.owner.name, service: 'imgr' },
      };
    default:
      return null;
  }
}
