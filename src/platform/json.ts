/** JSON.parse for untrusted text: undefined instead of an exception; zod decides what it is. */
export function safeJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}
