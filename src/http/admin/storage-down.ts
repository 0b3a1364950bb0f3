import type { StorageHealth } from "../../storage/health.ts";
import type { Storage } from "../../storage/types.ts";
import { withTimeout } from "../../util/timeout.ts";

/**
 * Whether an unexpected failure is the database's: known to be out, or not
 * answering a ping now (within a second). Then the answer is 503, not 500.
 */
export async function storageDown(storage: Storage, health: StorageHealth): Promise<boolean> {
  if (health.degraded) return true;
  try {
    await withTimeout(storage.ping(), 1000);
    return false;
  } catch {
    return true;
  }
}
