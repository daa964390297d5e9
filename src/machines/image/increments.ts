import type { Increment } from '../../messages/image-record.js';

/**
 * §7.13.2 increment rewrite of an INCREMENT_FLATTEN reply `"<size_mb> <chain>"`,
 * chain = `id:source,id:source,…`. W17: the whole reply is validated before
 * anything is applied, so a malformed element changes nothing.
 */
export function rewriteIncrements(
  increments: readonly Increment[],
  info: string,
): { ok: true; increments: Increment[] } | { ok: false; reason: string } {
  const m = /^\s*(\d+)(?:\s+(\S*))?\s*$/.exec(info);
  if (m?.[1] === undefined) return { ok: false, reason: `malformed reply "${info}"` };
  const size = Number(m[1]);
  const chain = m[2] ?? '';
  if (chain === '') return { ok: true, increments: [...increments] };
  const sources = new Map<number, string>();
  for (const el of chain.split(',')) {
    const e = /^(\d+):(\S+)$/.exec(el);
    if (e?.[1] === undefined || e[2] === undefined) return { ok: false, reason: `malformed chain element "${el}"` };
    const id = Number(e[1]);
    if (!increments.some((i) => i.id === id)) return { ok: false, reason: `unknown increment ${id}` };
    sources.set(id, e[2]);
  }
  const first = Number(chain.split(':')[0]);
  // Increments first-1, first-2, … are merged into the new FULL one, down to the first gap.
  const merged = new Set<number>();
  for (let id = first - 1; increments.some((i) => i.id === id); id--) merged.add(id);
  const rewritten = increments
    .filter((i) => !merged.has(i.id))
    .map((i) => {
      const source = sources.get(i.id) ?? i.source;
      return i.id === first ? { ...i, type: 'FULL' as const, parentId: -1, size, source } : { ...i, source };
    });
  return { ok: true, increments: rewritten };
}

export const incrementsSize = (xs: readonly Increment[]): number => xs.reduce((n, i) => n + i.size, 0);
