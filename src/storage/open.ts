import type { Config } from "../config.ts";
import { openSqliteStorage } from "./sqlite/index.ts";
import type { Storage } from "./types.ts";

export class StorageUnsupportedError extends Error {}

/** The storage the configuration names, migrated and ready. */
export async function openStorage(config: Pick<Config, "storage">): Promise<Storage> {
  const s = config.storage;
  if (s.type !== "sqlite") {
    throw new StorageUnsupportedError(
      `STORAGE_TYPE=${s.type} is not supported by this version of Tollgate; use SQLite (unset DATABASE_URL and STORAGE_TYPE)`,
    );
  }
  const storage = openSqliteStorage(s.path);
  await storage.migrate();
  return storage;
}

export function describeStorage(config: Pick<Config, "storage">): string {
  const s = config.storage;
  return s.type === "postgres" ? "postgres" : `${s.type}:${s.path}`;
}
