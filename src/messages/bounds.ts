import { z } from 'zod';

/**
 * What one command may carry. Every string, list and template has a bound,
 * so no single command can make a view, a driver request or a listing too
 * big for NATS (1 MiB messages): an image and its datastore together stay
 * well under it. Over a bound a command is refused with CMD_ERR_INVALID
 * naming the field. Name rules with their own spec texts (§7.1.4: 128
 * characters) stay in the machines; these bounds are wider.
 */
export const BOUNDS = {
  /** Names, formats, types, short ids. */
  text: 1024,
  /** Paths, sources, URLs. */
  path: 4096,
  /** Driver output quoted in a reply. */
  info: 64 * 1024,
  /** Entries of any list (disks, snapshots, log lines). */
  list: 1024,
  /** Template attributes. */
  templateKeys: 256,
  templateKey: 256,
  templateValue: 16 * 1024,
  /** The whole template, serialized. */
  template: 128 * 1024,
} as const;

export const Text = z.string().max(BOUNDS.text);
export const PathText = z.string().max(BOUNDS.path);
export const InfoText = z.string().max(BOUNDS.info);
export const boundedList = <T extends z.ZodType>(item: T) => z.array(item).max(BOUNDS.list);

/** Template attributes: KEY=VALUE pairs, keys upper-cased by the parser. */
export const TemplateSchema = z
  .record(z.string().min(1).max(BOUNDS.templateKey), z.string().max(BOUNDS.templateValue))
  .refine((t) => Object.keys(t).length <= BOUNDS.templateKeys, { message: `at most ${BOUNDS.templateKeys} attributes` })
  .refine((t) => JSON.stringify(t).length <= BOUNDS.template, { message: `at most ${BOUNDS.template / 1024} KiB in all` });
