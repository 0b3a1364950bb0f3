import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { storageContract } from "../../../test/contract/storage.ts";
import { bulkContract } from "../../../test/contract/storage-bulk.ts";
import { openSqliteStorage } from "./index.ts";

/** A new SQLite file per test, in a folder that does not exist yet. */
async function fresh() {
  const dir = mkdtempSync(join(tmpdir(), "tollgate-sqlite-"));
  const storage = openSqliteStorage(join(dir, "nested", "tollgate.db"));
  await storage.migrate();
  return {
    storage,
    cleanup: async () => {
      await storage.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

storageContract("sqlite (file)", fresh);
bulkContract("sqlite (file)", fresh);
