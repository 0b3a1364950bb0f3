import { Database } from "bun:sqlite";
import { afterAll, afterEach, beforeAll, expect, setDefaultTimeout, test } from "bun:test";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { displayPrefix, generateKey, hashKey } from "../../src/keys/secret.ts";
import { createBackup } from "../../src/ops/backup/create.ts";
import { bucketStartOf } from "../../src/time/buckets.ts";
import { sqliteAtMigration } from "../harness/backup-fixtures.ts";
import { E2E_TIMEOUT_MS, expectNoSecretsInLogs, GatewayProcess } from "../harness/gateway.ts";
import { type MockUpstream, startMockUpstream } from "../harness/mock-upstream.ts";

// A native SQLite backup taken by an older Tollgate, whose database was at an
// older schema (only 0000_init applied), restored with `tollgate restore` by
// this version: the restore brings it to the current schema and the gateway
// serves its keys and usage.

setDefaultTimeout(E2E_TIMEOUT_MS);

let mock: MockUpstream;
const dirs: string[] = [];
let g: GatewayProcess | undefined;

beforeAll(async () => {
  mock = await startMockUpstream({ record: false });
});
afterEach(async () => {
  await g?.close();
  g = undefined;
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});
afterAll(async () => {
  await mock.stop();
});

function tempDir(): string {
  const d = mkdtempSync(join(tmpdir(), "tollgate-e2e-old-backup-"));
  dirs.push(d);
  return d;
}

/** The migrations a SQLite file has applied, and whether 0001's index is there. */
function schemaOf(path: string): { migrations: number; bucketStartIndex: boolean } {
  const db = new Database(path, { readonly: true });
  try {
    const migrations =
      db.query<{ n: number }, []>("SELECT count(*) AS n FROM __drizzle_migrations").get()?.n ?? 0;
    const index = db
      .query<{ name: string }, []>(
        "SELECT name FROM sqlite_master WHERE type = 'index' AND name = 'usage_buckets_bucket_start_idx'",
      )
      .get();
    return { migrations, bucketStartIndex: index !== null };
  } finally {
    db.close();
  }
}

test("a native backup of a database at schema 0000 restores, is migrated, and is served", async () => {
  // The older gateway's database: schema 0000 only, one key with usage.
  const old = join(tempDir(), "old.db");
  sqliteAtMigration(old, 1);
  expect(schemaOf(old)).toEqual({ migrations: 1, bucketStartIndex: false });
  const now = Date.now();
  // Written as that version wrote it: today's storage code expects columns
  // (such as max_concurrent) that schema 0000 does not have.
  const secret = generateKey();
  const record = { id: "key_veteran" };
  const oldDb = new Database(old);
  try {
    oldDb
      .query(
        `INSERT INTO api_keys (id, key_hash, key_prefix, name, token_limit, model, expires_at,
           disabled, created_at, updated_at, last_used_at, total_tokens, total_requests)
         VALUES (?, ?, ?, 'veteran', 100000, NULL, NULL, 0, ?, ?, ?, 500, 2)`,
      )
      .run(
        record.id,
        hashKey(secret),
        displayPrefix(secret),
        now - 86_400_000,
        now - 86_400_000,
        now,
      );
    oldDb
      .query(
        "INSERT INTO usage_buckets (key_id, bucket_start, tokens, requests) VALUES (?, ?, 500, 2)",
      )
      .run(record.id, bucketStartOf(now));
    oldDb
      .query(
        "INSERT INTO usage_checkpoints (instance_id, last_seq, updated_at) VALUES ('old-instance', 1, ?)",
      )
      .run(now);
  } finally {
    oldDb.close();
  }
  const backup = await createBackup({
    target: { type: "sqlite", path: old },
    dir: tempDir(),
    compress: true,
    format: "native",
    origin: "manual",
  });
  expect(backup.manifest.schema).toMatchObject({ migrations: 1, latest: "0000_init" });

  // Today's gateway, with a database of its own at the current schema.
  g = new GatewayProcess({ mock, env: { BACKUP_DIR: tempDir() } });
  await g.start();
  const replaced = await g.createKey({ name: "replaced", limit: 1000 });
  expect(await g.stop()).toBe(0);

  const verified = await g.cli(["backup", "verify", backup.path]);
  expect(verified.stdout).toContain("restorable into the configured SQLite database");
  expect(verified.code).toBe(0);
  const restored = await g.cli(["restore", backup.path, "--yes"]);
  expect(restored.stdout).toContain("Restored 1 key");
  expect(restored.code).toBe(0);
  // Every migration the code ships has been applied.
  const shipped = JSON.parse(
    readFileSync(join(import.meta.dir, "../../migrations/sqlite/meta/_journal.json"), "utf8"),
  ).entries.length;
  expect(shipped).toBeGreaterThanOrEqual(5);
  expect(schemaOf(g.dbPath)).toEqual({ migrations: shipped, bucketStartIndex: true });
  // A column the old schema lacked comes back empty: no per-key concurrency limit.
  const shown = await g.cli(["keys", "show", "veteran", "--json"]);
  expect(JSON.parse(shown.stdout)).toMatchObject({ id: record.id, max_concurrent: null });

  // Served: the old key with its usage and quota window, the replaced one gone.
  await g.start();
  const stats = await g.stats(secret);
  expect(stats).toMatchObject({
    name: "veteran",
    token_limit_per_5h: 100_000,
    total_lifetime_tokens: 500,
    total_requests: 2,
  });
  expect(stats.current_usage.tokens_used_in_current_window).toBe(500);
  const chat = await g.fetch("/v1/chat/completions", {
    method: "POST",
    headers: { authorization: `Bearer ${secret}`, "content-type": "application/json" },
    body: JSON.stringify({ model: "glm-4.7", messages: [{ role: "user", content: "hi" }] }),
  });
  expect(chat.status).toBe(200);
  await chat.arrayBuffer();
  // The mock upstream reports 16 tokens for this request.
  const after = await g.statsWhen(secret, { tokens: 516, requests: 3 });
  expect(after.current_usage.tokens_used_in_current_window).toBe(516);
  const gone = await g.fetch("/stats", { headers: { authorization: `Bearer ${replaced.key}` } });
  expect(gone.status).toBe(401);
});

test("the secret sweep: every gateway's log is non-empty and holds no master, admin or client key", () => {
  expectNoSecretsInLogs();
});
