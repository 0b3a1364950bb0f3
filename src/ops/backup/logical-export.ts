import { readSnapshot } from "../../storage/postgres/snapshot.ts";
import { openSqliteStorage } from "../../storage/sqlite/index.ts";
import { BackupError, messageOf } from "./errors.ts";
import type { LogicalWriter } from "./logical-format.ts";
import type { SchemaVersion } from "./manifest.ts";
import { schemaVersion } from "./schema-version.ts";

/** Keys per batch: one batch in memory at a time. */
const BATCH = 500;

/**
 * Streams a SQLite snapshot (a VACUUM INTO copy nobody else uses, hence
 * consistent) into a logical backup. The copy is brought to this version's
 * schema first, which only ever touches the copy.
 */
export async function exportSqliteSnapshot(snapshot: string, out: LogicalWriter): Promise<void> {
  const storage = openSqliteStorage(snapshot);
  try {
    await storage.migrate();
    if (!storage.exportKeys || !storage.listCheckpoints) throw new Error("cannot export");
    for await (const batch of storage.exportKeys(BATCH)) await out.keys(batch);
    await out.checkpoints(await storage.listCheckpoints());
    if (storage.exportModelUsage) {
      for await (const rows of storage.exportModelUsage(BATCH)) await out.modelUsage(rows);
    }
    if (storage.exportAudit) {
      for await (const entries of storage.exportAudit(BATCH)) await out.audit(entries);
    }
  } finally {
    await storage.close();
  }
}

/**
 * Streams a PostgreSQL database into a logical backup from one
 * repeatable-read transaction: every batch is read from the same snapshot,
 * so totals, buckets and checkpoints agree however busy the gateways are.
 */
export async function exportPostgres(
  url: string,
  write: (header: SchemaVersion) => Promise<LogicalWriter>,
): Promise<void> {
  try {
    await readSnapshot(url, "tollgate-backup", async (snap) => {
      const out = await write(schemaVersion("postgres", await snap.appliedMigrations()));
      for await (const batch of snap.keys(BATCH)) await out.keys(batch);
      await out.checkpoints(await snap.checkpoints());
      // The per-model history and the audit log, when the database has them.
      for await (const rows of snap.modelUsage(BATCH)) await out.modelUsage(rows);
      for await (const entries of snap.audit(BATCH)) await out.audit(entries);
    });
  } catch (err) {
    if (err instanceof BackupError) throw err;
    throw new BackupError(`cannot export PostgreSQL: ${messageOf(err)}`);
  }
}
