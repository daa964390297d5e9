import { describe, expect, it } from 'vitest';
import { CommandSchema } from '../../src/messages/wire.js';
import { BOUNDS } from '../../src/messages/bounds.js';
import { PAGE_BYTES, queryImages, ImageQuerySchema } from '../../src/projections/query.js';
import { emptyImage } from '../../src/machines/image/record.js';
import type { ImageView } from '../../src/messages/image-record.js';

const allocate = (template: Record<string, string>) => ({ type: 'image.allocate', imageId: 1, datastoreId: 1, template });
const issues = (input: unknown): string => {
  const r = CommandSchema.safeParse(input);
  return r.success ? '' : r.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ');
};

describe('what one command may carry', () => {
  it('accepts an ordinary registration, and a long NAME is left to the machine (spec text)', () => {
    expect(issues(allocate({ NAME: 'ubuntu', PATH: '/var/tmp/u.qcow2', SIZE: '10' }))).toBe('');
    expect(issues(allocate({ NAME: 'n'.repeat(200), PATH: '/x' }))).toBe('');
  });

  it.each([
    ['too many attributes', allocate(Object.fromEntries(Array.from({ length: BOUNDS.templateKeys + 1 }, (_, i) => [`K${i}`, 'v']))), /template: at most 256 attributes/],
    ['one value too long', allocate({ NAME: 'x', DESCRIPTION: 'd'.repeat(BOUNDS.templateValue + 1) }), /template\.DESCRIPTION/],
    ['too much in all', allocate(Object.fromEntries(Array.from({ length: 10 }, (_, i) => [`K${i}`, 'v'.repeat(15 * 1024)]))), /template: at most 128 KiB in all/],
    ['a clone name of 5,000 characters', { type: 'image.clone', imageId: 2, originId: 1, name: 'c'.repeat(5000), datastoreId: 1 }, /name/],
    [
      'a disk list of 2,000',
      { type: 'image.allocateBackup', imageId: 3, datastoreId: 1, vmId: 1, source: 's', sizeMb: 1, format: 'raw', diskIds: Array.from({ length: 2000 }, (_, i) => i), owner: { uid: 0, gid: 0, uname: 'a', gname: 'b' } },
      /diskIds/,
    ],
    [
      'a snapshot list of 2,000',
      {
        type: 'image.setSnapshots',
        imageId: 1,
        snapshots: { mode: 'DENY', currentBase: -1, nextSnapshot: 0, list: Array.from({ length: 2000 }, (_, i) => ({ id: i, name: '', date: 0, parent: -1, children: [], active: false, size: 0 })) },
      },
      /snapshots\.list/,
    ],
    ['driver output of 1 MiB', { type: 'driver.reply', imageId: 1, requestId: 'r', action: 'CP', result: 'SUCCESS', info: 'i'.repeat(1024 * 1024) }, /info/],
    ['a source path of 10,000 characters', { type: 'image.addIncrement', imageId: 1, source: `/${'p'.repeat(10_000)}`, sizeMb: 1 }, /source/],
  ])('refuses %s, naming the field', (_what, input, field) => {
    expect(issues(input)).toMatch(field);
  });
});

describe('image listings fit in one message', () => {
  const big = (id: number): ImageView => ({ ...emptyImage(id), name: `img-${id}`, state: 'READY', template: { DESCRIPTION: 'x'.repeat(15 * 1024) } });
  const views = Array.from({ length: 120 }, (_, i) => big(i));

  it('stops a page before its byte budget and says where the next starts; the pages cover every image once', () => {
    const seen: number[] = [];
    let offset: number | null = 0;
    let pages = 0;
    while (offset !== null) {
      const page = queryImages(views, ImageQuerySchema.parse({ offset, limit: 1000 }));
      expect(JSON.stringify(page).length).toBeLessThanOrEqual(PAGE_BYTES + 1024);
      expect(page.total).toBe(120);
      seen.push(...page.items.map((v) => v.id));
      offset = page.nextOffset;
      pages += 1;
    }
    expect(pages).toBeGreaterThan(1);
    expect(seen).toEqual(views.map((v) => v.id));
  });

  it('a page holds one image even when that one alone is over the budget', () => {
    const page = queryImages(views, ImageQuerySchema.parse({}), 10);
    expect(page.items.map((v) => v.id)).toEqual([0]);
    expect(page.nextOffset).toBe(1);
  });
});
