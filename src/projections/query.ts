import type { ImageView } from '../messages/image-record.js';
import { ImageQuerySchema, type ImageQuery } from '../messages/query.js';
export { ImageQuerySchema, type ImageQuery };

/**
 * A reply must fit in one NATS message (1 MiB): a page holds at most `limit`
 * images and at most this many bytes of them; `nextOffset` says where the
 * next page starts (null on the last one).
 */
export const PAGE_BYTES = 768 * 1024;

export interface ImagePage {
  readonly total: number;
  readonly items: ImageView[];
  readonly nextOffset: number | null;
}

export function queryImages(views: Iterable<ImageView>, q: ImageQuery, maxBytes: number = PAGE_BYTES): ImagePage {
  const hits = [...views]
    .filter(
      (v) =>
        (q.state === undefined || v.state === q.state) &&
        (q.type === undefined || v.type === q.type) &&
        (q.datastoreId === undefined || v.datastore.id === q.datastoreId) &&
        (q.uid === undefined || v.uid === q.uid) &&
        (q.namePrefix === undefined || v.name.startsWith(q.namePrefix)),
    )
    .sort((a, b) => a.id - b.id);
  const items: ImageView[] = [];
  let bytes = 0;
  let next = q.offset;
  for (const v of hits.slice(q.offset, q.offset + q.limit)) {
    const size = JSON.stringify(v).length + 1;
    // A page always holds at least one image, however big, so paging moves on.
    if (items.length > 0 && bytes + size > maxBytes) break;
    items.push(v);
    bytes += size;
    next += 1;
  }
  return { total: hits.length, items, nextOffset: next < hits.length ? next : null };
}
