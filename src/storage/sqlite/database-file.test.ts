import { Database } from "bun:sqlite";
import { afterEach, describe, expect, test } from "bun:test";
import { rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { exportRow } from "../../../test/contract/storage-bulk.ts";
import { sqliteAtMigration, tempDir } from "../../../test/harness/backup-fixtures.ts";
import { knownMigrations } from "../../ops/backup/schema-version.ts";
import {
  checkDatabaseFile,
  copyDatabaseFile,
  countDatabaseFile,
  DatabaseCopyError,
} from "./database-file.ts";
import { openSqliteStorage } from "./index.ts";

const shipped = knownMigrations("sqlite");

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

async function seeded(keys: number): Promise<string> {
  const dir = tempDir("tollgate-dbfile-");
  dirs.push(dir);
  const path = join(dir, "live.db");
  const s = openSqliteStorage(path);
  await s.migrate();
  await s.importKeys?.(
    Array.from({ length: keys }, (_, i) => exportRow(i, 3)),
    { skipExisting: false },
  );
  await s.close();
  return path;
}

describe("SQLite database files", () => {
  test("a copy holds what the live file holds, and the check reads its counts and migrations", async () => {
    const live = await seeded(4);
    const copy = join(live, "..", "copy.db");
    copyDatabaseFile(live, copy);
    const check = checkDatabaseFile(copy);
    expect(check).toEqual({
      ok: true,
      counts: countDatabaseFile(live),
      migrations: { applied: shipped.length, latestAt: shipped[shipped.length - 1]?.when ?? null },
    });
    if (check.ok) expect(check.counts.keys).toBe(4);
    expect(countDatabaseFile(live).usageBuckets).toBe(12);
  });

  test("a copy that cannot be written fails as a copy error, the driver's error its cause", async () => {
    const live = await seeded(1);
    let thrown: unknown;
    try {
      copyDatabaseFile(live, join(live, "..", "no-such-folder", "copy.db"));
    } catch (err) {
      thrown = err;
    }
    expect(thrown).toBeInstanceOf(DatabaseCopyError);
    expect((thrown as Error).cause).toBeInstanceOf(Error);
  });

  test("an older database reports the migrations it has", () => {
    const dir = tempDir("tollgate-dbfile-");
    dirs.push(dir);
    const old = join(dir, "old.db");
    sqliteAtMigration(old, 2);
    const check = checkDatabaseFile(old);
    expect(check.ok && check.migrations).toEqual({
      applied: 2,
      latestAt: shipped[1]?.when ?? null,
    });
  });

  test("a database with no migrations table has none applied", () => {
    const dir = tempDir("tollgate-dbfile-");
    dirs.push(dir);
    const bare = join(dir, "bare.db");
    const db = new Database(bare, { create: true });
    db.run(
      "CREATE TABLE api_keys (total_tokens INTEGER, total_requests INTEGER); CREATE TABLE usage_buckets (tokens INTEGER); CREATE TABLE usage_checkpoints (x INTEGER)",
    );
    db.close();
    const check = checkDatabaseFile(bare);
    expect(check.ok && check.migrations).toEqual({ applied: 0, latestAt: null });
  });

  test("a file that is not a database cannot be checked", () => {
    const dir = tempDir("tollgate-dbfile-");
    dirs.push(dir);
    const junk = join(dir, "junk.db");
    writeFileSync(junk, "not a database at all, but long enough to look like a header".repeat(100));
    expect(() => checkDatabaseFile(junk)).toThrow();
  });
});
