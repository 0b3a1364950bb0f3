import { existsSync } from "node:fs";
import {
  checkDatabaseFile,
  copyDatabaseFile,
  DatabaseCopyError,
} from "../../storage/sqlite/database-file.ts";
import { BackupError, messageOf } from "./errors.ts";
import { headOf } from "./files.ts";
import type { BackupCounts, SchemaVersion } from "./manifest.ts";
import { schemaVersion } from "./schema-version.ts";

// SQLite files as backups: a consistent online copy of the live database
// (storage/sqlite/database-file.ts makes it), and inspection of such a copy.

const SQLITE_MAGIC = Buffer.from("SQLite format 3\0", "latin1");

/**
 * Writes a consistent copy of the live database at `path` to `target`, which
 * must not exist. Never a raw file copy: that could catch the WAL half-applied.
 */
export function snapshotSqlite(path: string, target: string): void {
  if (!existsSync(path)) throw new BackupError(`no SQLite database at ${path}; nothing to back up`);
  try {
    copyDatabaseFile(path, target);
  } catch (err) {
    if (!(err instanceof DatabaseCopyError)) throw err;
    throw new BackupError(`cannot copy the SQLite database ${path}: ${messageOf(err.cause)}`);
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
  try {
    const check = checkDatabaseFile(path);
    if (!check.ok) {
      return {
        ok: false,
        reason: `SQLite integrity_check failed: ${check.problems.slice(0, 3).join("; ")}`,
      };
    }
    return { ok: true, counts: check.counts, schema: schemaVersion("sqlite", check.migrations) };
  } catch (err) {
    return { ok: false, reason: `the SQLite database cannot be read: ${messageOf(err)}` };
  }
}
