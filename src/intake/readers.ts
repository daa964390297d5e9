import type { PrincipalLookup } from './principal-registry.js';

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

/** The reader an asker is, or undefined for one that may read nothing (unknown, refused, or a role that asks nothing). */
export function readerOf(asker: string, lookup: (name: string) => PrincipalLookup): Reader | undefined {
  if (WHOLE_PICTURE_ROLES.has(asker)) return { all: true, principal: asker };
  const p = lookup(asker);
  if (p === undefined || 'refused' in p) return undefined;
  if (p.admin) return { all: true, principal: asker };
  return { all: false, principal: asker, uid: p.uid, gid: p.gid };
}

/** Whether a reader may see what `owner` owns: USE (its owner, its group) or the whole picture. */
export const mayRead = (r: Reader, owner: { readonly uid: number; readonly gid: number }): boolean => r.all || r.uid === owner.uid || r.gid === owner.gid;

/** Whether a reader may read a kept outcome again: the principal that sent the command, or the whole picture. */
export const mayReadOutcome = (r: Reader, outcome: { readonly principal?: string | undefined }): boolean => r.all || outcome.principal === r.principal;
