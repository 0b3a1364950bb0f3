import { Command } from "commander";
import { loadConfig } from "../config.ts";
import { describeStorage, openStorage } from "../storage/open.ts";

export function dbCommand(): Command {
  const db = new Command("db").description("database maintenance");
  db.command("migrate")
    .description("apply the schema to the configured database (the server also does this at start)")
    .action(async () => {
      const config = loadConfig();
      const storage = await openStorage(config);
      await storage.close();
      process.stdout.write(`Schema is up to date (${describeStorage(config)}).\n`);
    });
  return db;
}
