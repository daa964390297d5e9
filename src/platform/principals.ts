import { z } from 'zod';
import { ROLES } from './nats.js';

/** OpenNebula's administrators' group (oneadmin's): its members pass every check. */
export const ADMIN_GROUP = 0;
/** oneadmin's uid: whoever acts as it owns what the administrator owns. */
export const ADMIN_UID = 0;

const IdSchema = z.number().int().nonnegative();

/** An inclusive range of uids or gids, `[from, to]`. */
export const IdRangeSchema = z.tuple([IdSchema, IdSchema]).refine(([from, to]) => from <= to, { message: 'a range runs from its lower end to its upper end' });
export type IdRange = z.infer<typeof IdRangeSchema>;

export const inRanges = (id: number, ranges: readonly IdRange[]): boolean => ranges.some(([from, to]) => id >= from && id <= to);

/** `1000-1999,3000` as the CLI takes it and `principal list` shows it. */
export const formatRanges = (ranges: readonly IdRange[]): string => (ranges.length === 0 ? 'none' : ranges.map(([a, b]) => (a === b ? `${a}` : `${a}-${b}`)).join(','));

export function parseRanges(text: string): IdRange[] | undefined {
  const out: IdRange[] = [];
  for (const part of text.split(',')) {
    const m = /^(\d{1,10})(?:-(\d{1,10}))?$/.exec(part.trim());
    if (!m) return undefined;
    const r = IdRangeSchema.safeParse([Number(m[1]), Number(m[2] ?? m[1])]);
    if (!r.success) return undefined;
    out.push(r.data);
  }
  return out;
}

const PrincipalFieldsSchema = z.object({
  uid: IdSchema,
  gid: IdSchema,
  /** Its user name in facts and refusals; the principal's name when absent. */
  uname: z.string().min(1).max(128).optional(),
  /** Member of the administrators' group: exactly when its gid is 0. */
  admin: z.boolean().default(false),
  delegate: z.boolean().default(false),
  /** A delegate's grant: the uids and the gids of the users it may act for (none: only itself). */
  uids: z.array(IdRangeSchema).max(64).default([]),
  gids: z.array(IdRangeSchema).max(64).default([]),
  /** May tell imgr about VMs: acquire, release, a VM disk's size, snapshots and save-as (OpenNebula's oned does that). */
  vmService: z.boolean().default(false),
});

/** Why an entry is refused: nobody reaches the administrators' group or oneadmin's uid without `admin`, and `admin` is that group. */
export function principalInconsistency(p: z.infer<typeof PrincipalFieldsSchema>): string | undefined {
  if (p.gid === ADMIN_GROUP && !p.admin) return `gid ${ADMIN_GROUP} is the administrators' group: only a principal added with --admin (admin: true) is in it`;
  if (p.admin && p.gid !== ADMIN_GROUP) return `admin means membership of the administrators' group: its gid must be ${ADMIN_GROUP}, not ${p.gid}`;
  if (p.uid === ADMIN_UID && !p.admin) return `uid ${ADMIN_UID} is oneadmin: only an administrator (admin: true) may be it`;
  if (!p.delegate && (p.uids.length > 0 || p.gids.length > 0)) return 'uids and gids are the grant of a delegate: it needs delegate: true (--delegate)';
  if (!p.admin && (inRanges(ADMIN_UID, p.uids) || inRanges(ADMIN_GROUP, p.gids))) return `only an administrator may vouch for uid ${ADMIN_UID} or gid ${ADMIN_GROUP}: its grant must leave them out`;
  return undefined;
}

/**
 * A principal is a service (or an operator) that sends commands. It
 * authenticates to NATS as the user of its name, may publish commands only
 * on `imgr.cmd.<name>.>` and read replies only on `_INBOX.<name>.>`; the
 * manager takes its identity (uid, gid, administrator or not) from here, by
 * the subject the server enforced, never from what a message says.
 *
 * `delegate` lets a principal act for the users it names in the envelope
 * (a portal that authenticates its own users, as Sunstone does for oned),
 * within its grant: a uid in `uids` and a gid in `gids`, and uid 0 or gid 0
 * only if it is an administrator itself. An entry that would put a principal
 * in group 0 without `admin` (or `admin` outside group 0) is refused.
 */
export const PrincipalSchema = PrincipalFieldsSchema.superRefine((p, ctx) => {
  const why = principalInconsistency(p);
  if (why !== undefined) ctx.addIssue({ code: 'custom', message: why });
});
export type Principal = z.infer<typeof PrincipalSchema>;

export const PrincipalNameSchema = z
  .string()
  .regex(/^[a-z][a-z0-9_-]{0,31}$/, 'lower-case letters, digits, _ and -, starting with a letter, at most 32')
  .refine((n) => !(ROLES as readonly string[]).includes(n) || n === 'service', { message: 'is the name of a role' });

export const PrincipalsSchema = z.record(PrincipalNameSchema, PrincipalSchema);
export type Principals = z.infer<typeof PrincipalsSchema>;

/**
 * A registry read entry by entry: the principals that are valid, and for
 * each refused entry why. The manager refuses the commands of a refused
 * principal (never acts on a guess of what was meant); the others go on.
 */
export function readPrincipals(raw: unknown): { principals: Principals; refused: Record<string, string> } | undefined {
  const all = z.record(z.string(), z.unknown()).safeParse(raw);
  if (!all.success) return undefined;
  const principals: Principals = {};
  const refused: Record<string, string> = {};
  for (const [name, entry] of Object.entries(all.data)) {
    const n = PrincipalNameSchema.safeParse(name);
    const p = PrincipalSchema.safeParse(entry);
    if (n.success && p.success) principals[name] = p.data;
    else refused[name] = [...(n.success ? [] : n.error.issues), ...(p.success ? [] : p.error.issues)].map((i) => `${i.path.length > 0 ? `${i.path.join('.')}: ` : ''}${i.message}`).join('; ');
  }
  return { principals, refused };
}

/** What a fresh system has: the operators' administrator, as OpenNebula's oneadmin. */
export const DEFAULT_PRINCIPALS: Principals = { oneadmin: { uid: 0, gid: 0, admin: true, delegate: false, uids: [], gids: [], vmService: false } };

/** The KV key of imgr_meta that holds the principals; the manager reads it, `imgr principal add` writes it. */
export const PRINCIPALS_KEY = 'principals';
