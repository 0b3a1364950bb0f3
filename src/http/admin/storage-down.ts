import type { StorageHealth } from "../../storage/health.ts";
import type { Storage } from "../../storage/types.ts";

/**
 * Whether an unexpected failure is the database's: known to be out, or not
 * answering a ping now (within a second). Then the answer is 503, not 500.
 */
export async function storageDown(storage: Storage, health: StorageHealth): Promise<boolean> {
  if (health.degraded) return true;
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<"timeout">((resolve) => {
    timer = setTimeout(() => resolve("timeout"), 1000);
  });
  try {
    return (await Promise.race([storage.ping(), timeout])) === "timeout";
  } catch {
    return true;
  } finally {
    clearTimeout(timer);
  }
}
