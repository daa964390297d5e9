/**
 * JSON Schemas of the wire protocol, generated from the zod schemas so that
 * service authors using raw NATS validate exactly what imgr parses:
 * `npm run docs:schemas` writes schemas/*.json; a unit test keeps them current.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { z } from 'zod';
import { CommandMessageSchema, CommitSchema, DriverRequestSchema, OutcomeSchema, RejectionRecordSchema, StatReplySchema } from '../src/messages/wire.js';

export const SCHEMAS: Record<string, z.ZodType> = {
  'command-message': CommandMessageSchema,
  outcome: OutcomeSchema,
  commit: CommitSchema,
  'rejection-record': RejectionRecordSchema,
  'driver-request': DriverRequestSchema,
  'stat-reply': StatReplySchema,
};

export function schemaText(name: string, schema: z.ZodType): string {
  const json = z.toJSONSchema(schema, { io: 'input', unrepresentable: 'any' });
  return `${JSON.stringify({ $id: `urn:imgr:schema:${name}`, ...json }, null, 2)}\n`;
}

if (import.meta.url === `file://${process.argv[1] ?? ''}`) {
  const dir = new URL('../schemas/', import.meta.url);
  mkdirSync(dir, { recursive: true });
  for (const [name, schema] of Object.entries(SCHEMAS)) writeFileSync(new URL(`${name}.json`, dir), schemaText(name, schema));
}
