import { Database } from "bun:sqlite";
import type { AppliedMigrations, DataCounts } from "../types.ts";
import { appliedMigrations } from "./applied-migrations.ts";
import { dataCounts } from "./restore.ts";

// A SQLite database file taken as a whole: copied while it is in use, checked,
// counted. Backup and restore (ops/backup) decide what to do with the answers.

/** The copy itself failed (the file opened); `cause` is the driver's error. */
export class DatabaseCopyError extends Error {
  constructor(cause: unknown) {
    super("the SQLite database could not be copied", { cause });
  }
}

/**
 * Writes a consistent copy of the live database at `path` to `target`, which
 * must not exist. VACUUM INTO runs as one read transaction, so writers carry
 * on and the copy is a snapshot; never a raw file copy, which could catch the
 * WAL half-applied.
 */
export function copyDatabaseFile(path: string, target: string): void {
  const db = new Database(path, { readwrite: true, create: false });
  try {
    // The gateway may be writing: wait for its write to finish rather than fail.
    db.run("PRAGMA busy_timeout = 10000");
    db.query("VACUUM INTO ?").run(target);
  } catch (err) {
    throw new DatabaseCopyError(err);
  } finally {
    db.close();
  }
}

export type DatabaseFileCheck =
  | { ok: true; counts: DataCounts; migrations: AppliedMigrations }
  | { ok: false; problems: string[] };

/**
 * integrity_check, then the counts and applied migrations of a file nobody
 * else uses (opened read-only). Throws when the file cannot be read at all.
 */
export function checkDatabaseFile(path: string): DatabaseFileCheck {
  const db = new Database(path, { readonly: true });
  try {
    const problems = db
      .query<{ integrity_check: string }, []>("PRAGMA integrity_check")
      .all()
      .map((r) => r.integrity_check);
    if (problems.length !== 1 || problems[0] !== "ok") return { ok: false, problems };
    return { ok: true, counts: dataCounts(db), migrations: appliedMigrations(db) };
  } finally {
    db.close();
  }
}

/** The counts of the data tables of the database at `path` (which must exist). */
export function countDatabaseFile(path: string): DataCounts {
  // Not readonly: a readonly connection cannot open a WAL database nobody else has open.
  const db = new Database(path, { readwrite: true, create: false });
  try {
    return dataCounts(db);
  } finally {
    db.close();
  }
}
