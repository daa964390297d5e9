/** Structural equality for plain JSON data (records, arrays, scalars); key order does not matter. */
export function jsonEqual(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (typeof a !== 'object' || typeof b !== 'object' || a === null || b === null) return false;
  if (Array.isArray(a) || Array.isArray(b)) {
    if (!Array.isArray(a) || !Array.isArray(b) || a.length !== b.length) return false;
    return a.every((x, i) => jsonEqual(x, b[i]));
  }
  const ka = Object.keys(a);
  const kb = Object.keys(b);
  if (ka.length !== kb.length) return false;
  const rb = b as Record<string, unknown>;
  const ra = a as Record<string, unknown>;
  return ka.every((k) => Object.hasOwn(rb, k) && jsonEqual(ra[k], rb[k]));
}

/** The top-level fields of `after` that differ from `before`. */
export function changedFields<R extends object>(before: R, after: R): Partial<R> {
  const out: Partial<R> = {};
  for (const k of Object.keys(after) as (keyof R)[]) {
    if (!jsonEqual(before[k], after[k])) out[k] = after[k];
  }
  return out;
}

/** Drops keys whose value is undefined, so a parsed partial can be spread over a full record. */
export function definedFields<R extends object>(p: { [K in keyof R]?: R[K] | undefined }): Partial<R> {
  const out: Partial<R> = {};
  for (const k of Object.keys(p) as (keyof R)[]) {
    const v = p[k];
    if (v !== undefined) out[k] = v;
  }
  return out;
}
