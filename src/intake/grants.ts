import type { Actor } from '../messages/envelope.js';
import { rejection, type Rejection } from '../messages/errors.js';
import { ADMIN_GROUP, ADMIN_UID, formatRanges, inRanges, type Principal } from '../platform/principals.js';

export type Authenticated = { ok: true; actor: Actor } | { ok: false; rejection: Rejection };

const named = (a: Pick<Actor, 'name' | 'uid' | 'gid'>): string => `${a.name} (uid ${a.uid}, gid ${a.gid})`;

/** What a delegate's grant lets it claim, in words a refusal can carry. */
export function grantOf(p: Principal): string {
  if (!p.delegate) return 'it acts only as itself';
  const ranges = p.uids.length === 0 && p.gids.length === 0 ? 'it was granted no users (it acts only as itself)' : `it may act for uids ${formatRanges(p.uids)} in gids ${formatRanges(p.gids)}`;
  return p.admin ? ranges : `${ranges}, and never for uid ${ADMIN_UID} or gid ${ADMIN_GROUP} (it is not an administrator)`;
}

/**
 * Who a principal's command is from. A principal acts as itself: the
 * envelope's actor may only repeat its uid and gid, and facts record the
 * principal. A delegating gateway acts for the user it names, within its
 * grant: the uid in one of its `uids` ranges and the gid in one of its
 * `gids`, and uid 0 or gid 0 (oneadmin, the administrators' group) only if
 * the gateway is an administrator itself; the record says which gateway
 * vouched. The actor is built here, field by field: nothing the message
 * adds reaches the machines, and the VM service's grant comes from the
 * principal alone.
 */
export function actorOf(name: string, p: Principal, claimed: Actor): Authenticated {
  const grants = p.vmService ? { vmService: true } : {};
  const itself = claimed.uid === p.uid && claimed.gid === p.gid;
  if (!p.delegate) {
    if (!itself) return { ok: false, rejection: rejection('CMD_ERR_ACTOR', { actor: named(claimed), principal: name }) };
    return { ok: true, actor: { uid: p.uid, gid: p.gid, name: p.uname ?? name, service: name, ...grants } };
  }
  if (!itself) {
    const privileged = claimed.uid === ADMIN_UID || claimed.gid === ADMIN_GROUP;
    const within = inRanges(claimed.uid, p.uids) && inRanges(claimed.gid, p.gids);
    if ((privileged && !p.admin) || !within) return { ok: false, rejection: rejection('CMD_ERR_ACTOR_GRANT', { actor: named(claimed), principal: name, grant: grantOf(p) }) };
  }
  return { ok: true, actor: { uid: claimed.uid, gid: claimed.gid, name: claimed.name, service: name, ...grants } };
}
