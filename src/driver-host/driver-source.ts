import { join, resolve } from 'node:path';
import type { OpenNebulaConfig } from '../platform/settings.js';

/** Where one DS_MAD's action scripts are and how they are run. */
export interface ScriptPlace {
  readonly dir: string;
  /** Extra environment for the script (OpenNebula's trees want ONE_LOCATION and its Ruby library). */
  readonly env: Readonly<Record<string, string>>;
  /** The working directory oned's driver gives its scripts. */
  readonly cwd: string | undefined;
}

/**
 * imgr's bundled drivers (one folder per DS_MAD under `driversDir`) and,
 * beside them, DS_MADs that run from an OpenNebula installation unchanged:
 * `<remotes>/datastore/<folder>/<action>`, with the environment oned's
 * driver gives (ONE_LOCATION for a self-contained tree, its Ruby library on
 * RUBYLIB) and its state directory as the working directory, so that the
 * scripts' relative paths (`../libfs.sh`, `../../etc/datastore/…`) resolve.
 */
export class DriverSources {
  private readonly remotes: string | null;
  private readonly oneEnv: Record<string, string>;
  private readonly oneCwd: string | undefined;

  /** DS_MAD → folder under the tree's remotes/datastore. */
  private readonly opennebulaDrivers: Readonly<Record<string, string>>;

  constructor(
    private readonly driversDir: string,
    opennebula: OpenNebulaConfig | null = null,
  ) {
    this.opennebulaDrivers = opennebula?.drivers ?? {};
    if (opennebula?.location !== undefined) {
      const location = resolve(opennebula.location);
      this.remotes = join(location, 'var', 'remotes');
      this.oneEnv = { ONE_LOCATION: location, RUBYLIB: join(location, 'lib', 'ruby') };
      this.oneCwd = join(location, 'var');
    } else if (opennebula?.remotes !== undefined) {
      // A system install: scripts find /usr/lib/one on their own.
      this.remotes = resolve(opennebula.remotes);
      this.oneEnv = { RUBYLIB: '/usr/lib/one/ruby' };
      this.oneCwd = '/var/lib/one';
    } else {
      this.remotes = null;
      this.oneEnv = {};
      this.oneCwd = undefined;
    }
  }

  /** The place of a DS_MAD's scripts, or null when no configured source has it. */
  placeOf(mad: string): ScriptPlace | null {
    if (!/^[A-Za-z0-9_-]+$/.test(mad)) return null;
    const folder = this.opennebulaDrivers[mad];
    if (folder !== undefined) return this.remotes === null ? null : { dir: join(this.remotes, 'datastore', folder), env: this.oneEnv, cwd: this.oneCwd };
    return { dir: join(this.driversDir, mad), env: {}, cwd: undefined };
  }

  /** True when the DS_MAD runs from the OpenNebula tree (its scripts know nothing of IMGR_* variables). */
  isOpenNebula(mad: string): boolean {
    return this.opennebulaDrivers[mad] !== undefined;
  }
}
