import { Database } from "bun:sqlite";
import { existsSync } from "node:fs";
import { dataCounts } from "../../storage/sqlite/restore.ts";
import { BackupError, messageOf } from "./errors.ts";
import { headOf } from "./files.ts";
import type { BackupCounts, SchemaVersion } from "./manifest.ts";
import { schemaVersion } from "./schema-version.ts";

// SQLite files as backups: a consistent online copy of the live database
// (VACUUM INTO runs as one read transaction, so writers carry on and the copy
// is a snapshot), and inspection of such a copy.

const SQLITE_MAGIC = Buffer.from("SQLite format 3\0", "latin1");

/**
 * Writes a consistent copy of the live database at `path` to `target`, which
 * must not exist. Never a raw file copy: that could catch the WAL half-applied.
 */
export function snapshotSqlite(path: string, target: string): void {
  if (!existsSync(path)) throw new BackupError(`no SQLite database at ${path}; nothing to back up`);
  const db = new Database(path, { readwrite: true, create: false });
  try {
    // The gateway may be writing: wait for its write to finish rather than fail.
    db.run("PRAGMA busy_timeout = 10000");
    db.query("VACUUM INTO ?").run(target);
  } catch (err) {
    throw new BackupError(`cannot copy the SQLite database ${path}: ${messageOf(err)}`);
  } finally {
    db.close();
  }
}

export function isSqliteFile(path: string): boolean {
  return headOf(path, SQLITE_MAGIC.length).equals(SQLITE_MAGIC);
}

export type SqliteInspection =
  | { ok: true; counts: BackupCounts; schema: SchemaVersion }
  | { ok: false; reason: string };

/** integrity_check, then the counts and schema version of a SQLite file that nobody else uses. */
export function inspectSqlite(path: string): SqliteInspection {
  if (!isSqliteFile(path)) return { ok: false, reason: "the payload is not a SQLite database" };
  let db: Database | undefined;
  try {
    db = new Database(path, { readonly: true });
    const problems = db
      .query<{ integrity_check: string }, []>("PRAGMA integrity_check")
      .all()
      .map((r) => r.integrity_check);
    if (problems.length !== 1 || problems[0] !== "ok") {
      return {
        ok: false,
        reason: `SQLite integrity_check failed: ${problems.slice(0, 3).join("; ")}`,
      };
    }
    return { ok: true, counts: dataCounts(db), schema: sqliteSchema(db) };
  } catch (err) {
    return { ok: false, reason: `the SQLite database cannot be read: ${messageOf(err)}` };
  } finally {
    db?.close();
  }
}

export function sqliteSchema(db: Database): SchemaVersion {
  const table = db
    .query<{ n: number }, []>(
      "SELECT count(*) AS n FROM sqlite_master WHERE type = 'table' AND name = '__drizzle_migrations'",
    )
    .get();
  if (!table?.n) return schemaVersion("sqlite", 0, null);
  const row = db
    .query<{ n: number; latest: number | null }, []>(
      "SELECT count(*) AS n, max(created_at) AS latest FROM __drizzle_migrations",
    )
    .get();
  return schemaVersion("sqlite", row?.n ?? 0, row?.latest ?? null);
}
