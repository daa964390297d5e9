import { z } from 'zod';

/** Numeric object ids (spec: integers, -1 = none) branded so they cannot be mixed up. */
export const ImageIdSchema = z.number().int().nonnegative().brand<'ImageId'>();
export type ImageId = z.infer<typeof ImageIdSchema>;
export const DatastoreIdSchema = z.number().int().nonnegative().brand<'DatastoreId'>();
export type DatastoreId = z.infer<typeof DatastoreIdSchema>;
export const VmIdSchema = z.number().int().nonnegative().brand<'VmId'>();
export type VmId = z.infer<typeof VmIdSchema>;

/** Opaque ids minted outside the domain (command ids, request ids). */
// The characters NATS KV keys and msgIDs accept, so ids can name KV entries.
const opaque = z.string().min(1).max(128).regex(/^[A-Za-z0-9_=-][A-Za-z0-9._=-]*$/, 'letters, digits and . _ = - only');
export const CommandIdSchema = opaque.brand<'CommandId'>();
export type CommandId = z.infer<typeof CommandIdSchema>;
export const RequestIdSchema = opaque.brand<'RequestId'>();
export type RequestId = z.infer<typeof RequestIdSchema>;
