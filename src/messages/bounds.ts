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

/**
 * Control (Unicode Cc: NUL, escapes, DEL…) and format (Cf: bidi overrides
 * and isolates, zero-width characters, soft hyphens…) characters. A name
 * holding one breaks the drivers that receive it (a NUL cannot pass in an
 * argument or an environment variable) or shows one thing and is another
 * (U+202E turns "gpj.exe" into "exe.jpg" on a screen); no name needs one.
 */
const CONTROL_OR_FORMAT = /[\p{Cc}\p{Cf}]/u;
/**
 * The same, less tab and newline: OpenNebula templates carry multi-line
 * values (a DESCRIPTION, a CONTEXT script's lines, START_SCRIPT) and
 * indented ones, and both travel safely as XML text and as one environment
 * variable each. A carriage return, NUL and every other control still do not.
 * (A NAME with a tab or a newline is refused by the machines' name rule, §7.1.4,
 * with OpenNebula's own text.)
 */
const CONTROL_OR_FORMAT_BUT_TAB_LF = /[^\P{Cc}\t\n]|\p{Cf}/u;

const codePoint = (c: string): string => `U+${(c.codePointAt(0) ?? 0).toString(16).toUpperCase().padStart(4, '0')}`;

/** `s` refusing the characters `forbidden` matches (control and format characters by default), with an error that names the one found. */
export const plain = <T extends z.ZodString>(s: T, forbidden: RegExp = CONTROL_OR_FORMAT): T =>
  s.refine((v) => !forbidden.test(v), { error: (iss) => `must not contain control or format characters (found ${codePoint(forbidden.exec(String(iss.input))?.[0] ?? '')})` });

/** Text a client names something with (names, formats, types): no control or format character. */
export const Text = plain(z.string().max(BOUNDS.text));
export const PathText = z.string().max(BOUNDS.path);
export const InfoText = z.string().max(BOUNDS.info);
export const boundedList = <T extends z.ZodType>(item: T) => z.array(item).max(BOUNDS.list);

/** Template attributes: KEY=VALUE pairs, keys upper-cased by the parser. */
export const TemplateSchema = z
  .record(plain(z.string().min(1).max(BOUNDS.templateKey)), plain(z.string().max(BOUNDS.templateValue), CONTROL_OR_FORMAT_BUT_TAB_LF))
  .refine((t) => Object.keys(t).length <= BOUNDS.templateKeys, { message: `at most ${BOUNDS.templateKeys} attributes` })
  .refine((t) => JSON.stringify(t).length <= BOUNDS.template, { message: `at most ${BOUNDS.template / 1024} KiB in all` });
