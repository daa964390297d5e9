import { z } from 'zod';
import { CommandIdSchema } from './ids.js';

/** Who acts. gid 0 is the administrators' group (spec §7.1: admin-only options). */
export const ActorSchema = z.object({
  uid: z.number().int().nonnegative(),
  gid: z.number().int().nonnegative(),
  name: z.string().min(1).max(128),
  /** The service that sent the command on the user's behalf, for the audit trail. */
  service: z.string().min(1).max(64).default('cli'),
  /**
   * The sending principal holds the VM service's grant (VM bookkeeping).
   * Set by the intake from the authenticated principal only: what a message
   * says here is replaced.
   */
  vmService: z.boolean().optional(),
});
export type Actor = z.infer<typeof ActorSchema>;

export const ADMIN_GID = 0;
export const isAdmin = (a: Pick<Actor, 'gid'>): boolean => a.gid === ADMIN_GID;

/**
 * Everything that is not the command itself: identity, causality and time.
 * Time and ids arrive here so that the machines never read a clock or mint ids.
 */
export const EnvelopeSchema = z.object({
  commandId: CommandIdSchema,
  correlationId: z.string().min(1).max(128),
  causationId: z.string().min(1).max(128).nullable().default(null),
  actor: ActorSchema,
  /** Epoch milliseconds at which the command was accepted for processing. */
  at: z.number().int().nonnegative(),
});
export type Envelope = z.infer<typeof EnvelopeSchema>;
export type EnvelopeInput = z.input<typeof EnvelopeSchema>;
