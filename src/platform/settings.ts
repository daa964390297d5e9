import { existsSync, readFileSync } from 'node:fs';
import { isAbsolute, resolve } from 'node:path';
import { z } from 'zod';
import { DsMadConfigSchema, TmMadConfigSchema } from '../messages/datastore.js';
import { BUNDLED_DRIVERS, ManagerConfigSchema, type ManagerConfig } from './config.js';

/**
 * imgr's one configuration, read alike by `npm start` and every role: the
 * file `imgr.json` in the data directory (IMGR_CONFIG_FILE names another),
 * then IMGR_CONFIG (JSON) over it. Drivers named there are added to the
 * bundled ones (a bundled name may be reconfigured); datastores live under
 * the data directory unless `drivers.datastoreLocation` says otherwise.
 */
const DriversSchema = z
  .object({
    dsMads: z.record(z.string().regex(/^[A-Za-z0-9_-]+$/, 'a DS_MAD is letters, digits, _ or -'), DsMadConfigSchema.strict()).default({}),
    tmMads: z.record(z.string().regex(/^[A-Za-z0-9_-]+$/, 'a TM_MAD is letters, digits, _ or -'), TmMadConfigSchema.strict()).default({}),
    datastoreLocation: z.string().min(1).optional(),
  })
  .strict();

const NAME = /^[A-Za-z0-9_-]+$/;

/**
 * An OpenNebula installation whose datastore drivers run unchanged: a
 * self-contained tree (`location`, what ONE_LOCATION names) or a system
 * install's remotes (`remotes`, e.g. /var/lib/one/remotes), and the DS_MADs
 * that run from it: DS_MAD → folder under remotes/datastore (a list of folders
 * names each `one-<folder>`). By default OpenNebula's `fs` and `dummy`, as
 * `one-fs` and `one-dummy`, beside imgr's own `fs` and `dummy`.
 */
export const OpenNebulaSchema = z
  .object({
    location: z.string().min(1).optional(),
    remotes: z.string().min(1).optional(),
    drivers: z
      .union([z.array(z.string().regex(NAME)), z.record(z.string().regex(NAME, 'a DS_MAD is letters, digits, _ or -'), z.string().regex(NAME, 'a folder name is letters, digits, _ or -'))])
      .default({ 'one-fs': 'fs', 'one-dummy': 'dummy' })
      .transform((d) => (Array.isArray(d) ? Object.fromEntries(d.map((f) => [`one-${f}`, f])) : d)),
  })
  .strict()
  .refine((o) => (o.location === undefined) !== (o.remotes === undefined), 'name exactly one of "location" (an ONE_LOCATION tree) or "remotes" (a system install\'s remotes folder)');
export type OpenNebulaConfig = z.infer<typeof OpenNebulaSchema>;

const SettingsSchema = ManagerConfigSchema.omit({ drivers: true })
  .partial()
  .extend({
    drivers: DriversSchema.default({ dsMads: {}, tmMads: {} }),
    opennebula: OpenNebulaSchema.optional(),
  })
  .strict();

export interface Settings {
  readonly manager: ManagerConfig;
  readonly opennebula: OpenNebulaConfig | null;
  /** Where the settings came from, for messages. */
  readonly sources: readonly string[];
}

export class SettingsError extends Error {
  override readonly name = 'SettingsError';
}

/** Reads and validates the configuration; every problem is named with the file or variable and the field. */
export function loadSettings(env: NodeJS.ProcessEnv, dataDir: string): Settings {
  const file = env['IMGR_CONFIG_FILE'] ?? resolve(dataDir, 'imgr.json');
  const layers: { source: string; value: unknown }[] = [];
  if (existsSync(file)) layers.push({ source: file, value: parseJson(readFileSync(file, 'utf8'), file) });
  else if (env['IMGR_CONFIG_FILE'] !== undefined) throw new SettingsError(`imgr configuration: ${file} (IMGR_CONFIG_FILE) does not exist`);
  if (env['IMGR_CONFIG'] !== undefined && env['IMGR_CONFIG'].trim() !== '') layers.push({ source: 'IMGR_CONFIG', value: parseJson(env['IMGR_CONFIG'], 'IMGR_CONFIG') });
  const parsed = layers.map(({ source, value }) => {
    const r = SettingsSchema.safeParse(value);
    if (!r.success) throw new SettingsError(`imgr configuration (${source}): ${r.error.issues.map((i) => `${i.path.join('.') || '(top level)'}: ${i.message}`).join('; ')}`);
    return r.data;
  });
  const merged = parsed.reduce<z.infer<typeof SettingsSchema>>(
    (acc, s) => ({
      ...acc,
      ...s,
      drivers: { dsMads: { ...acc.drivers.dsMads, ...s.drivers.dsMads }, tmMads: { ...acc.drivers.tmMads, ...s.drivers.tmMads } },
    }),
    { drivers: { dsMads: {}, tmMads: {} } },
  );
  const { drivers, opennebula, ...rest } = merged;
  // The last layer that names a datastore location wins.
  const location = parsed.map((p) => p.drivers.datastoreLocation).filter((l) => l !== undefined).at(-1) ?? resolve(dataDir, 'datastores');
  const opennebulaDrivers = opennebula?.drivers ?? {};
  const manager = ManagerConfigSchema.parse({
    ...rest,
    drivers: {
      // The tree's drivers are DS_MADs like any other; flags for them may be set in drivers.dsMads.
      dsMads: { ...BUNDLED_DRIVERS.dsMads, ...Object.fromEntries(Object.keys(opennebulaDrivers).map((m) => [m, {}])), ...drivers.dsMads },
      tmMads: { ...BUNDLED_DRIVERS.tmMads, ...drivers.tmMads },
      datastoreLocation: isAbsolute(location) ? location : resolve(dataDir, location),
    },
  });
  return { manager, opennebula: opennebula ?? null, sources: layers.map((l) => l.source) };
}

function parseJson(text: string, source: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch (e) {
    throw new SettingsError(`imgr configuration (${source}) is not JSON: ${e instanceof Error ? e.message : String(e)}`);
  }
}

/** The driver host's view of the OpenNebula tree, when the configuration names one. */
export const openNebulaOf = (s: Settings): { opennebula?: OpenNebulaConfig } => (s.opennebula === null ? {} : { opennebula: s.opennebula });
