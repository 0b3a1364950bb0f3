import type { Storage } from "../storage/types.ts";

/**
 * Operations worth timing: the request and accounting paths, key changes,
 * and usage history (admin charts and the retention pruner), whose range
 * scans are the ones that grow with the data.
 */
const TIMED = [
  "ping",
  "getKeyByHash",
  "getKeysByHash",
  "getKeyById",
  "usageSince",
  "usageSinceMany",
  "applyUsage",
  "createKey",
  "updateKey",
  "rotateKey",
  "revokeKey",
  "deleteKey",
  "appendAudit",
  "listAudit",
  "pruneAudit",
  "usageBetween",
  "usageByKey",
  "pruneUsage",
] as const;

/** What the wrapper records into: a latency per operation and a count of failures. */
export interface StorageMetrics {
  storageDuration: { startTimer(labels: { op: string }): () => unknown };
  storageErrors: { inc(labels: { op: string }): void };
}

export interface InflightCounter {
  n: number;
}

/**
 * The same storage, with every timed operation's latency, errors and
 * concurrency recorded. Wrapping keeps the backends free of metrics code.
 */
export function instrumentStorage(
  storage: Storage,
  metrics: StorageMetrics,
  inflight: InflightCounter,
): Storage {
  const wrapped: Storage = Object.create(storage);
  for (const op of TIMED) {
    const original = storage[op].bind(storage) as (...args: unknown[]) => Promise<unknown>;
    (wrapped as unknown as Record<string, unknown>)[op] = async (...args: unknown[]) => {
      const end = metrics.storageDuration.startTimer({ op });
      inflight.n++;
      try {
        return await original(...args);
      } catch (err) {
        metrics.storageErrors.inc({ op });
        throw err;
      } finally {
        inflight.n--;
        end();
      }
    };
  }
  return wrapped;
}
