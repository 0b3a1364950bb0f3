import { testPostgres } from "../../../test/harness/postgres.ts";
import { bulkContract } from "../bulk-contract.ts";
import { storageContract } from "../contract.ts";
import { openPostgresStorage } from "./index.ts";

const target = await testPostgres();

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

storageContract(`postgres (${target.kind})`, fresh);
bulkContract(`postgres (${target.kind})`, fresh);
