import { createHash } from 'node:crypto';
import type { Command } from '../messages/wire.js';
import type { Actor } from '../messages/envelope.js';
import { redactSealed } from '../secrets/sealed.js';

/**
 * What a command id stands for: the command and who sent it. An id used again
 * with another fingerprint is another command under a taken id, and is
 * refused instead of being answered with the first one's outcome. The
 * client library computes the same value to recognise a reuse that JetStream's
 * de-duplication hides from the intake.
 */
export function fingerprintOf(command: Command, actor: Actor): string {
  // Sealing is randomised: a retry seals its secret anew, and is still the same command.
  const same = redactSealed(command);
  return createHash('sha256').update(JSON.stringify({ command: same, actor: { uid: actor.uid, gid: actor.gid, name: actor.name } })).digest('hex').slice(0, 32);
}
