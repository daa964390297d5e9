/**
 * Names and template values refuse control and format characters at the
 * command boundary (issue 27): NUL broke the drivers of an image named with
 * it, and a bidi override shows a name as another. The test walks every
 * command schema and tries each string field it finds, so a field added
 * later is tried too: it must refuse them, or be listed below as written by
 * imgr itself (never by a client) with the reason.
 */
import { describe, expect, it } from 'vitest';
import type { z } from 'zod';
import { CommandMessageSchema, CommandSchema, INTERNAL_COMMANDS } from '../../src/messages/wire.js';
import { TemplateSchema } from '../../src/messages/bounds.js';
import { parseCommandMessage } from '../../src/intake/intake.js';

/** Fields whose text a driver printed, carried by commands only imgr's own roles send. */
const WRITTEN_BY_IMGR: Readonly<Record<string, string>> = {
  'driver.reply.info': "a driver's stdout or error text, quoted as it printed it",
  'driver.log.lines[].text': "a driver's stderr lines",
  'datastore.monitored.info': "a MONITOR's output (base64)",
  'datastore.swept.files[].path': "files found in a datastore's folder",
  'image.allocateBackup.source': "a backup driver's SOURCE",
  'image.addIncrement.source': "a backup driver's SOURCE",
};

/** A string schema somewhere in a command, by its path (`type.field.sub[]…`, `{key}` and `{value}` for a record). */
interface Leaf {
  readonly path: string;
  readonly schema: z.ZodType;
}

/** Every string schema in `schema`, with where it is. */
function leaves(schema: z.ZodType, path: string): Leaf[] {
  const def = (schema as unknown as { _zod: { def: Record<string, unknown> & { type: string } } })._zod.def;
  switch (def.type) {
    case 'string':
      return [{ path, schema }];
    case 'object':
      return Object.entries((schema as z.ZodObject).shape).flatMap(([k, v]) => leaves(v as z.ZodType, `${path}.${k}`));
    case 'record':
      return [...leaves(def['keyType'] as z.ZodType, `${path}{key}`), ...leaves(def['valueType'] as z.ZodType, `${path}{value}`)];
    case 'array':
      return leaves(def['element'] as z.ZodType, `${path}[]`);
    case 'optional':
    case 'nullable':
    case 'default':
    case 'prefault':
    case 'readonly':
    case 'nonoptional':
      return leaves(def['innerType'] as z.ZodType, path);
    case 'pipe':
      return leaves(def['in'] as z.ZodType, path);
    case 'union':
      return (def['options'] as z.ZodType[]).flatMap((o) => leaves(o, path));
    case 'number':
    case 'boolean':
    case 'literal':
    case 'enum':
    case 'null':
      return [];
    default:
      throw new Error(`${path}: a ${def.type} schema; teach this walk how to find its strings`);
  }
}

const COMMANDS = CommandSchema.options.map((o) => ({ type: o.shape.type.value, schema: o }));
const ALL = COMMANDS.flatMap(({ type, schema }) => leaves(schema, type).map((l) => ({ ...l, type })));
const checked = ALL.filter((l) => !(l.path in WRITTEN_BY_IMGR) && !l.path.endsWith('.type'));

/** What must be refused: NUL, ESC, DEL, C1, bidi overrides and isolates, zero-width and BOM, soft hyphen. */
const FORBIDDEN = ['\u0000', '\u001b', '\u007f', '\u0085', '\u202e', '\u202d', '\u2066', '\u2067', '\u2068', '\u2069', '\u200b', '\u200e', '\u200f', '\ufeff', '\u00ad'];

describe('every string a client sends in a command', () => {
  it('the walk found the fields it should (names, templates, formats)', () => {
    const paths = checked.map((l) => l.path);
    for (const p of ['image.allocate.template{key}', 'image.allocate.template{value}', 'image.clone.name', 'image.allocateSaveAs.name', 'image.restore.options.name', 'image.chtype.imageType', 'image.setSnapshots.snapshots.list[].name', 'datastore.create.template{value}']) {
      expect(paths).toContain(p);
    }
  });

  it('fields written only by imgr are only on commands a client may not send', () => {
    for (const path of Object.keys(WRITTEN_BY_IMGR)) {
      expect(ALL.map((l) => l.path), path).toContain(path);
      const type = ALL.find((l) => l.path === path)?.type ?? '';
      expect(INTERNAL_COMMANDS.has(type), `${path} is on ${type}`).toBe(true);
    }
  });

  for (const leaf of checked) {
    it(`${leaf.path} refuses control and format characters`, () => {
      for (const c of FORBIDDEN) {
        const r = leaf.schema.safeParse(`ab${c}cd`);
        expect(r.success, `${leaf.path} took U+${(c.codePointAt(0) ?? 0).toString(16)}`).toBe(false);
      }
    });
  }
});

describe('template values', () => {
  it('keep tab and newline (a multi-line DESCRIPTION), and refuse carriage return', () => {
    expect(TemplateSchema.safeParse({ DESCRIPTION: 'line one\n\tline two' }).success).toBe(true);
    expect(TemplateSchema.safeParse({ DESCRIPTION: 'line one\r\nline two' }).success).toBe(false);
  });
  it('names in any script stay names', () => {
    expect(TemplateSchema.safeParse({ NAME: 'диск', DESCRIPTION: 'صورة 😀 日本語' }).success).toBe(true);
  });
});

describe('at the intake', () => {
  it('an image named with a bidi override is refused with the field and the character', () => {
    const message = {
      envelope: { commandId: 'c-1', correlationId: 'c-1', actor: { uid: 0, gid: 0, name: 'oneadmin' }, at: 1 },
      command: { type: 'image.allocate', imageId: 3, datastoreId: 1, template: { NAME: 'invoice\u202egpj.exe', PATH: '/var/tmp/x' } },
    };
    expect(CommandMessageSchema.safeParse(message).success).toBe(false);
    const parsed = parseCommandMessage('imgr.cmd.oneadmin.image.3', JSON.stringify(message), 'public', [], () => ({ uid: 0, gid: 0, admin: true }) as never);
    expect(parsed.ok).toBe(false);
    if (!parsed.ok) {
      expect(parsed.rejection.code).toBe('CMD_ERR_INVALID');
      expect(parsed.rejection.message).toContain('command.template.NAME: must not contain control or format characters (found U+202E)');
    }
  });
  it('so is a clone named with NUL', () => {
    const message = {
      envelope: { commandId: 'c-2', correlationId: 'c-2', actor: { uid: 0, gid: 0, name: 'oneadmin' }, at: 1 },
      command: { type: 'image.clone', imageId: 4, originId: 3, name: 'copy\u0000', datastoreId: 1 },
    };
    const parsed = parseCommandMessage('imgr.cmd.oneadmin.image.4', JSON.stringify(message), 'public', [], () => ({ uid: 0, gid: 0, admin: true }) as never);
    expect(!parsed.ok && parsed.rejection.message).toContain('command.name: must not contain control or format characters (found U+0000)');
  });
});
