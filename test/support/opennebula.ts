import { execFileSync } from 'node:child_process';
import { existsSync, lstatSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));

/** OpenNebula's own drivers, unmodified, beside the repository (never copied into it). */
export const OPENNEBULA_SOURCE = process.env['IMGR_OPENNEBULA_SOURCE'] ?? resolve(ROOT, '..', 'shared', 'opennebula');

/**
 * A self-contained OpenNebula tree (ONE_LOCATION) for a test: the shared
 * `var/` and `lib/` linked read-only, plus the `share/gems` folder xpath.rb
 * restricts Ruby to, holding the system's rexml gem.
 */
export function openNebulaTree(): { location: string; dispose: () => void } {
  if (!existsSync(join(OPENNEBULA_SOURCE, 'var', 'remotes', 'datastore'))) {
    throw new Error(`OpenNebula's drivers are not at ${OPENNEBULA_SOURCE} (../shared/opennebula beside the repository, or IMGR_OPENNEBULA_SOURCE)`);
  }
  const location = mkdtempSync(join(tmpdir(), 'imgr-one-'));
  mirror(join(OPENNEBULA_SOURCE, 'var'), join(location, 'var'));
  symlinkSync(join(OPENNEBULA_SOURCE, 'lib'), join(location, 'lib'));
  const [gemDir = '', spec = ''] = execFileSync('ruby', ['-e', 's = Gem::Specification.find_by_name("rexml"); puts s.gem_dir; puts s.loaded_from'], { encoding: 'utf8' }).trim().split('\n');
  mkdirSync(join(location, 'share', 'gems', 'gems'), { recursive: true });
  mkdirSync(join(location, 'share', 'gems', 'specifications'));
  symlinkSync(gemDir, join(location, 'share', 'gems', 'gems', basename(gemDir)));
  symlinkSync(spec, join(location, 'share', 'gems', 'specifications', basename(spec)));
  return { location, dispose: () => rmSync(location, { recursive: true, force: true }) };
}

/**
 * Links every file of `from` into a fresh tree at `to`. OpenNebula's
 * repository keeps some actions as symbolic links (fs/stat → ../common/stat);
 * a copy made without symlink support holds the link's target as the file's
 * text, and those are made links again, as an installation has them.
 */
function mirror(from: string, to: string): void {
  mkdirSync(to, { recursive: true });
  for (const name of readdirSync(from)) {
    const src = join(from, name);
    const dst = join(to, name);
    const st = lstatSync(src);
    if (st.isDirectory()) {
      mirror(src, dst);
      continue;
    }
    const target = st.isFile() && (st.mode & 0o111) === 0 && st.size < 256 ? gitLinkTarget(src) : null;
    symlinkSync(target ?? src, dst);
  }
}

function gitLinkTarget(file: string): string | null {
  const text = readFileSync(file, 'utf8');
  if (text.includes('\n') || !/^[\w./-]+$/.test(text)) return null;
  return existsSync(resolve(dirname(file), text)) ? text : null;
}
