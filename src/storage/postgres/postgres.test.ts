import { setDefaultTimeout } from "bun:test";
import { storageContract } from "../../../test/contract/storage.ts";
import { bulkContract } from "../../../test/contract/storage-bulk.ts";
import { testPostgres } from "../../../test/harness/postgres.ts";
import { openPostgresStorage } from "./index.ts";

const target = await testPostgres();
// PGlite is PostgreSQL compiled to WebAssembly: correct, but several times
// slower than a server, more so on a busy machine.
setDefaultTimeout(target.kind === "pglite" ? 30_000 : 10_000);

async function fresh() {
  const db = await target.create();
  const storage = openPostgresStorage({ url: db.url, poolMax: target.shared ? 5 : 1 });
  await storage.migrate();
  return {
    storage,
    cleanup: async () => {
      await storage.close();
      await db.drop();
    },
  };
}

storageContract(`postgres (${target.kind})`, fresh, {
  oneConnection:
    target.kind === "pglite"
      ? "PGlite serves one connection at a time, so it can show neither a lost update nor a deadlock; set TEST_DATABASE_URL to run it on a server"
      : undefined,
});
bulkContract(`postgres (${target.kind})`, fresh);
