import type { PrincipalLookup } from './principal-registry.js';
import { actorOf } from './grants.js';
import { allows } from '../machines/authorize.js';

/**
 * Who a query's asker reads as. The asker is the NATS user the query subject
 * names (the server lets each publish only its own). Operators' tools (the
 * auditor and dashboard roles, the manager's own connection) and
 * administrators see the whole picture; any other principal sees what it
 * may USE, as OpenNebula shows a user only that.
 */
export type Reader = { readonly all: true; readonly principal: string } | { readonly all: false; readonly principal: string; readonly uid: number; readonly gid: number };

/** The roles whose queries see everything: operators' tools. */
export const WHOLE_PICTURE_ROLES: ReadonlySet<string> = new Set(['auditor', 'dashboard', 'manager']);

/**
 * The reader an asker is, or undefined for one that may read nothing
 * (unknown, refused, a role that asks nothing, or a delegate claiming a user
 * outside its grant). `readAs` is a delegate's claim (READ_AS_HEADER).
 */
export function readerOf(asker: string, lookup: (name: string) => PrincipalLookup, readAs?: string): Reader | undefined {
  if (WHOLE_PICTURE_ROLES.has(asker)) return { all: true, principal: asker };
  const p = lookup(asker);
  if (p === undefined || 'refused' in p) return undefined;
  const claim = p.delegate && readAs !== undefined ? /^(\d{1,9}):(\d{1,9})$/.exec(readAs) : null;
  if (p.delegate && readAs !== undefined && claim === null) return undefined;
  const [uid, gid] = claim ? [Number(claim[1]), Number(claim[2])] : [p.uid, p.gid];
  const granted = actorOf(asker, p, { uid, gid, name: asker, service: asker });
  if (!granted.ok) return undefined;
  // OpenNebula's rule: the oneadmin group sees everything (only an administrator reaches it, itself or for a user).
  if (granted.actor.gid === 0 || (p.admin && claim === null)) return { all: true, principal: asker };
  return { all: false, principal: asker, uid: granted.actor.uid, gid: granted.actor.gid };
}

/** Whether a reader may see what `owner` owns: the machines' USE rule (its owner, its group), or the whole picture. */
export const mayRead = (r: Reader, owner: { readonly uid: number; readonly gid: number }): boolean => r.all || allows('USE', { uid: r.uid, gid: r.gid, name: r.principal, service: r.principal }, owner);

/** Whether a reader may read a kept outcome again: the principal that sent the command, or the whole picture. */
export const mayReadOutcome = (r: Reader, outcome: { readonly principal?: string | undefined }): boolean => r.all || outcome.principal === r.principal;
