import { Database } from "bun:sqlite";
import { afterEach, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { sqliteAtMigration } from "../../../test/harness/backup-fixtures.ts";
import { openSqliteStorage } from "./index.ts";

const T0 = Date.UTC(2026, 10, 28, 12, 0, 0);
let dir: string | undefined;
afterEach(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
});

test("a database at schema 0002 migrates to revocable keys and an audit log without losing anything", async () => {
  dir = mkdtempSync(join(tmpdir(), "tollgate-0003-"));
  const path = join(dir, "old.db");
  sqliteAtMigration(path, 3);
  const old = new Database(path);
  old
    .query(
      `INSERT INTO api_keys (id, key_hash, key_prefix, name, token_limit, model, expires_at,
         max_concurrent, disabled, created_at, updated_at, last_used_at, total_tokens, total_requests)
       VALUES ('key_old', 'h', 'pk_old', 'old', 1000, NULL, NULL, 2, 1, ?, ?, ?, 130, 3)`,
    )
    .run(T0, T0, T0);
  old
    .query(
      "INSERT INTO usage_buckets (key_id, bucket_start, tokens, requests) VALUES (?, ?, 130, 3)",
    )
    .run("key_old", T0);
  old.close();

  const s = openSqliteStorage(path);
  try {
    await s.migrate();
    expect(await s.getKeyById("key_old")).toMatchObject({
      name: "old",
      tokenLimit: 1000,
      maxConcurrent: 2,
      disabled: true,
      totalTokens: 130,
      totalRequests: 3,
      revokedAt: null,
    });
    expect(await s.usageSince("key_old", 0)).toEqual([
      { bucketStart: T0, tokens: 130, requests: 3 },
    ]);
    expect((await s.listAudit({ limit: 10, offset: 0 })).total).toBe(0);
    expect((await s.revokeKey("key_old", T0 + 1))?.revokedAt).toBe(T0 + 1);
  } finally {
    await s.close();
  }
});
