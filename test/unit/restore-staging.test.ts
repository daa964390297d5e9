/**
 * A restored disk's CP may read its restore's staging folder (issue 27,
 * "Paths"): the allowance rides on the CP request only when imgr itself
 * registers the disk (an internal command); a user's allocate with the same
 * template gets none.
 */
import { describe, expect, it } from 'vitest';
import { event, given } from '../support/image-spec.js';
import { USER } from '../support/fixtures.js';
import { RESTORE_STAGING_EXTRA } from '../../src/messages/driver.js';
import { INTERNAL_ID_PREFIX } from '../../src/messages/wire.js';
import type { Effect } from '../../src/messages/effects.js';

const ID = 5;
const staged = '/var/lib/one/datastores/101/.restore/req-9';
const template = { NAME: 'back-disk-0', PATH: `${staged}/disk.0`, SIZE: '4', TYPE: 'OS', FROM_BACKUP_DS: '101' };
const cpExtra = (commandId: string, t: Record<string, string> = template): Record<string, string> | undefined => {
  const f = given([], ID).when(event({ type: 'image.allocate', imageId: ID, datastoreId: 1, template: t }, { actor: USER, commandId })).thenState('LOCKED');
  const req = f.effects.find((e): e is Extract<Effect, { kind: 'driver.request' }> => e.kind === 'driver.request');
  return req?.extra;
};

describe('the CP of a restored disk', () => {
  it('registered by imgr, carries its staging folder', () => {
    expect(cpExtra(`${INTERNAL_ID_PREFIX}restore-5`)).toEqual({ [RESTORE_STAGING_EXTRA]: staged });
  });
  it("sent by a user with the same template, carries nothing: the datastore's SAFE_DIRS alone decide", () => {
    expect(cpExtra('user-cmd-1')).toEqual({});
  });
  it('registered by imgr without FROM_BACKUP_DS (not a restore), carries nothing', () => {
    const { FROM_BACKUP_DS: _, ...plain } = template;
    expect(cpExtra(`${INTERNAL_ID_PREFIX}x`, plain)).toEqual({});
  });
  it('a PATH that is not a file in a plain absolute folder gets no allowance', () => {
    for (const path of ['disk.0', '/disk.0', '/a/../etc/disk.0']) {
      expect(cpExtra(`${INTERNAL_ID_PREFIX}y`, { ...template, PATH: path }), path).toEqual({});
    }
  });
  it('a PATH with a blank is refused before anything (principle 8: no value a driver reads splits into words)', () => {
    given([], ID)
      .when(event({ type: 'image.allocate', imageId: ID, datastoreId: 1, template: { ...template, PATH: '/a b/disk.0' } }, { actor: USER, commandId: `${INTERNAL_ID_PREFIX}y` }))
      .thenRejects('OBJ_ERR_ATTR_VALUE', 'Invalid PATH "/a b/disk.0": it must be an absolute path, a file:// path or an http(s) URL, of letters, digits and . _ - + @ % = , : ~ / (and ? # & [ ] in a URL); no blank, quote or shell character');
  });
});
