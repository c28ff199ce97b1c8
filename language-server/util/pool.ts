// A bounded worker pool: many independent jobs (files to read, caches or builders to ask), a few
// at a time, so that neither the thread pool, the network nor the remote hosts are flooded.

/**
 * Runs `work` on each item, at most `limit` at once, starting them in the items' order. Resolves
 * when all are done. When one rejects, no further item starts, and the pool rejects with that
 * first error once those already running have settled.
 */
export async function forEachLimited<T>(items: readonly T[], limit: number, work: (item: T, index: number) => Promise<void>): Promise<void> {
  let next = 0;
  let failure: { error: unknown } | undefined;
  const worker = async () => {
    while (failure === undefined && next < items.length) {
      const i = next++;
      try {
        await work(items[i] as T, i);
      } catch (error) {
        failure ??= { error };
      }
    }
  };
  const workers = Math.min(Math.max(1, Math.floor(limit) || 1), items.length);
  await Promise.all(Array.from({ length: workers }, worker));
  if (failure !== undefined) throw failure.error;
}
