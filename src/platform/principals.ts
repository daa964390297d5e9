import { z } from 'zod';
import { ROLES } from './nats.js';

/**
 * A principal is a service (or an operator) that sends commands. It
 * authenticates to NATS as the user of its name, may publish commands only
 * on `imgr.cmd.<name>.>` and read replies only on `_INBOX.<name>.>`; the
 * manager takes its identity (uid, gid, administrator or not) from here, by
 * the subject the server enforced, never from what a message says.
 *
 * `delegate` lets a principal act for the users it names in the envelope
 * (a portal that authenticates its own users, as Sunstone does for oned);
 * only such a gateway may send another uid than its own.
 */
export const PrincipalSchema = z.object({
  uid: z.number().int().nonnegative(),
  gid: z.number().int().nonnegative(),
  /** Its user name in facts and refusals; the principal's name when absent. */
  uname: z.string().min(1).max(128).optional(),
  admin: z.boolean().default(false),
  delegate: z.boolean().default(false),
});
export type Principal = z.infer<typeof PrincipalSchema>;

export const PrincipalNameSchema = z
  .string()
  .regex(/^[a-z][a-z0-9_-]{0,31}$/, 'lower-case letters, digits, _ and -, starting with a letter, at most 32')
  .refine((n) => !(ROLES as readonly string[]).includes(n) || n === 'service', { message: 'is the name of a role' });

export const PrincipalsSchema = z.record(PrincipalNameSchema, PrincipalSchema);
export type Principals = z.infer<typeof PrincipalsSchema>;

/** What a fresh system has: the operators' administrator, as OpenNebula's oneadmin. */
export const DEFAULT_PRINCIPALS: Principals = { oneadmin: { uid: 0, gid: 0, admin: true, delegate: false } };

/** The KV key of imgr_meta that holds the principals; the manager reads it, `imgr principal add` writes it. */
export const PRINCIPALS_KEY = 'principals';
