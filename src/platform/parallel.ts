/**
 * Runs `task` over `items`, at most `limit` at once. A pool-sized burst of
 * requests started all at once (a checkpoint of 100,000 snapshots) floods the
 * connection: every other request waits behind it and times out with it.
 */
export async function inParallel<T>(items: readonly T[], limit: number, task: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) {
      const item = items[next++] as T;
      await task(item);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
}
