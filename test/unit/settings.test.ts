import { afterEach, describe, expect, it } from 'vitest';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadSettings, openNebulaOf } from '../../src/platform/settings.js';

const dirs: string[] = [];
const dataDir = (config?: unknown): string => {
  const d = mkdtempSync(join(tmpdir(), 'imgr-settings-'));
  dirs.push(d);
  if (config !== undefined) writeFileSync(join(d, 'imgr.json'), typeof config === 'string' ? config : JSON.stringify(config));
  return d;
};
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

describe('imgr configuration (imgr.json in the data directory, IMGR_CONFIG over it)', () => {
  it('without either: the bundled drivers, datastores under the data directory', () => {
    const d = dataDir();
    const s = loadSettings({}, d);
    expect(Object.keys(s.manager.drivers.dsMads).sort()).toEqual(['dummy', 'fs', 'restic', 'rsync']);
    expect(s.manager.drivers.datastoreLocation).toBe(join(d, 'datastores'));
    expect(s.opennebula).toBeNull();
  });
  it('one entry points imgr at an OpenNebula tree: its fs and dummy become DS_MADs one-fs and one-dummy beside the bundled ones', () => {
    const s = loadSettings({}, dataDir({ opennebula: { location: '/opt/one' } }));
    expect(Object.keys(s.manager.drivers.dsMads)).toEqual(expect.arrayContaining(['fs', 'dummy', 'one-fs', 'one-dummy']));
    expect(openNebulaOf(s)).toEqual({ opennebula: { location: '/opt/one', drivers: { 'one-fs': 'fs', 'one-dummy': 'dummy' } } });
    // Other folders by name (one-<folder>), or under names of one's own.
    expect(loadSettings({}, dataDir({ opennebula: { remotes: '/var/lib/one/remotes', drivers: ['fs', 'ceph'] } })).opennebula?.drivers).toEqual({ 'one-fs': 'fs', 'one-ceph': 'ceph' });
    expect(Object.keys(loadSettings({}, dataDir({ opennebula: { location: '/o', drivers: { nfs: 'fs' } } })).manager.drivers.dsMads)).toContain('nfs');
  });
  it('a driver named in imgr.json is added to the bundled ones; IMGR_CONFIG overrides single settings', () => {
    const d = dataDir({ drivers: { dsMads: { mine: { requiredAttrs: ['POOL'] } } }, ackWaitMs: 3000 });
    const s = loadSettings({ IMGR_CONFIG: JSON.stringify({ ackWaitMs: 5000 }) }, d);
    expect(Object.keys(s.manager.drivers.dsMads)).toEqual(expect.arrayContaining(['fs', 'dummy', 'mine']));
    expect(s.manager.drivers.dsMads['mine']?.requiredAttrs).toEqual(['POOL']);
    expect(s.manager.ackWaitMs).toBe(5000);
    expect(s.sources).toEqual([join(d, 'imgr.json'), 'IMGR_CONFIG']);
  });
  it('a relative datastore location is under the data directory', () => {
    const d = dataDir({ drivers: { datastoreLocation: 'pools' } });
    expect(loadSettings({}, d).manager.drivers.datastoreLocation).toBe(join(d, 'pools'));
  });
  it('refuses what it cannot use, naming the file and the field', () => {
    expect(() => loadSettings({}, dataDir('{not json'))).toThrow(/imgr configuration \(.*imgr\.json\) is not JSON/);
    expect(() => loadSettings({}, dataDir({ ackWaitMs: 'soon' }))).toThrow(/imgr configuration \(.*imgr\.json\): ackWaitMs: /);
    expect(() => loadSettings({}, dataDir({ driver: {} }))).toThrow(/\(top level\): Unrecognized key/);
    expect(() => loadSettings({}, dataDir({ drivers: { dsMads: { 'one-fs': { opennebula: 'fs' } } } }))).toThrow(/drivers\.dsMads\.one-fs: Unrecognized key/);
    expect(() => loadSettings({}, dataDir({ opennebula: { location: '/a', remotes: '/b' } }))).toThrow(/exactly one of "location"/);
    expect(() => loadSettings({ IMGR_CONFIG_FILE: '/nonexistent/imgr.json' }, dataDir())).toThrow(/does not exist/);
  });
});
