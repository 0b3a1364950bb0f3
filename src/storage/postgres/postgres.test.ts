import { testPostgres } from "../../../test/harness/postgres.ts";
import { storageContract } from "../contract.ts";
import { openPostgresStorage } from "./index.ts";

const target = await testPostgres();

storageContract(`postgres (${target.kind})`, async () => {
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
});
