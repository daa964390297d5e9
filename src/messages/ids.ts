import { z } from 'zod';

/** Numeric object ids (spec: integers, -1 = none) branded so they cannot be mixed up. */
export const ImageIdSchema = z.number().int().nonnegative().brand<'ImageId'>();
export type ImageId = z.infer<typeof ImageIdSchema>;
export const DatastoreIdSchema = z.number().int().nonnegative().brand<'DatastoreId'>();
export type DatastoreId = z.infer<typeof DatastoreIdSchema>;
export const VmIdSchema = z.number().int().nonnegative().brand<'VmId'>();
export type VmId = z.infer<typeof VmIdSchema>;

/**
 * Opaque ids minted outside the domain (command ids, request ids). A command
 * id is the key of its outcome (imgr_outcomes: the subject
 * `$KV.imgr_outcomes.<id>`) and its commit's msgID; a request id is part of
 * the id of its reply (`imgr.reply-<id>`). So an id is exactly what a KV key
 * and a subject's tokens accept: tokens of letters, digits, `_`, `=` and `-`
 * joined by single dots, none empty (no leading, trailing or double dot).
 * One the bucket could not store was taken, failed at every delivery and was
 * redelivered for ever, holding a slot of its partition's durable.
 * test/unit/ids.test.ts derives this against the KV library's key rule.
 */
export const OPAQUE_ID = /^[A-Za-z0-9_=-]+(?:\.[A-Za-z0-9_=-]+)*$/;
const opaque = z.string().min(1).max(128).regex(OPAQUE_ID, 'letters, digits and _ = - in tokens joined by single dots (none empty)');
export const CommandIdSchema = opaque.brand<'CommandId'>();
export type CommandId = z.infer<typeof CommandIdSchema>;
export const RequestIdSchema = opaque.brand<'RequestId'>();
export type RequestId = z.infer<typeof RequestIdSchema>;
