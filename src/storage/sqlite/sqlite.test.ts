import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { storageContract } from "../contract.ts";
import { openSqliteStorage } from "./index.ts";

storageContract("sqlite (file)", async () => {
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
});
