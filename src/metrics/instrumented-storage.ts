import type { Storage } from "../storage/types.ts";
import type { Metrics } from "./registry.ts";

/** Operations worth timing: the request and accounting paths, and key changes. */
const TIMED = [
  "ping",
  "getKeyByHash",
  "getKeyById",
  "usageSince",
  "applyUsage",
  "createKey",
  "updateKey",
  "rotateKey",
  "deleteKey",
] as const;

export interface InflightCounter {
  n: number;
}

/**
 * The same storage, with every timed operation's latency, errors and
 * concurrency recorded. Wrapping keeps the backends free of metrics code.
 */
export function instrumentStorage(
  storage: Storage,
  metrics: Pick<Metrics, "storageDuration" | "storageErrors">,
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
