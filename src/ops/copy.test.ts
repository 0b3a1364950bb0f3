import { afterEach, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { exportRow } from "../../test/contract/storage-bulk.ts";
import { testPostgres } from "../../test/harness/postgres.ts";
import { openPostgresStorage } from "../storage/postgres/index.ts";
import { openSqliteStorage } from "../storage/sqlite/index.ts";
import type { KeyExport, Storage } from "../storage/types.ts";
import { CopyError, copyDatabase, copyTarget, totalsOf } from "./copy.ts";

const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function sqlite(): Promise<Storage> {
  const dir = mkdtempSync(join(tmpdir(), "tollgate-copy-"));
  const s = openSqliteStorage(join(dir, "db.sqlite"));
  await s.migrate();
  cleanups.push(async () => {
    await s.close();
    rmSync(dir, { recursive: true, force: true });
  });
  return s;
}

async function postgresDb(): Promise<Storage> {
  const target = await testPostgres();
  const db = await target.create();
  const s = openPostgresStorage({ url: db.url, poolMax: target.shared ? 4 : 1 });
  await s.migrate();
  cleanups.push(async () => {
    await s.close();
    await db.drop();
  });
  return s;
}

async function all(s: Storage): Promise<KeyExport[]> {
  const out: KeyExport[] = [];
  for await (const b of s.exportKeys?.(100) ?? []) out.push(...b);
  return out;
}

const rows = Array.from({ length: 1234 }, (_, i) => exportRow(i, (i % 3) + 1));

describe("db copy", () => {
  test("copyTarget tells PostgreSQL URLs from SQLite paths", () => {
    expect(copyTarget("postgres://u:p@h/db")).toEqual({
      type: "postgres",
      url: "postgres://u:p@h/db",
    });
    expect(copyTarget("postgresql://h/db").type).toBe("postgres");
    expect(copyTarget("./data/new.db")).toEqual({ type: "sqlite", path: "./data/new.db" });
    expect(copyTarget("sqlite:/srv/x.db")).toEqual({ type: "sqlite", path: "/srv/x.db" });
    expect(() => copyTarget("mysql://h/db")).toThrow(CopyError);
  });

  test("SQLite to PostgreSQL and back: every key, bucket and total identical", async () => {
    const a = await sqlite();
    await a.importKeys?.(rows, { skipExisting: false });
    await a.applyUsage({ instanceId: "inst-a", firstSeq: 77, lastSeq: 77, keys: [] });
    const pg = await postgresDb();
    const progress: number[] = [];
    const there = await copyDatabase(a, pg, {
      allowNonEmpty: false,
      dryRun: false,
      onProgress: (n) => progress.push(n),
    });
    expect(there.source.keys).toBe(1234);
    expect(there.target).toEqual(there.source);
    expect(there.checkpoints).toBe(1);
    expect(progress).toEqual([500, 1000, 1234]);
    expect(await pg.checkpoint("inst-a")).toBe(77);

    const b = await sqlite();
    await copyDatabase(pg, b, { allowNonEmpty: false, dryRun: false });
    expect(await all(b)).toEqual(await all(a));
    expect(await b.checkpoint("inst-a")).toBe(77);
  }, 60_000);

  test("refuses a non-empty target and leaves it alone", async () => {
    const a = await sqlite();
    await a.importKeys?.(rows.slice(0, 10), { skipExisting: false });
    const b = await sqlite();
    await b.importKeys?.(rows.slice(5, 6), { skipExisting: false });
    await expect(copyDatabase(a, b, { allowNonEmpty: false, dryRun: false })).rejects.toThrow(
      /already holds 1 keys; nothing was copied/,
    );
    expect(await b.countKeys()).toBe(1);
    // Told to, it copies the rest and leaves the key it had as it was.
    const r = await copyDatabase(a, b, { allowNonEmpty: true, dryRun: false });
    expect(r.skipped).toBe(1);
    expect(await b.countKeys()).toBe(10);
  });

  test("a dry run writes nothing", async () => {
    const a = await sqlite();
    await a.importKeys?.(rows.slice(0, 30), { skipExisting: false });
    const b = await sqlite();
    const r = await copyDatabase(a, b, { allowNonEmpty: false, dryRun: true });
    expect(r.source.keys).toBe(30);
    expect(r.target.keys).toBe(0);
    expect(await totalsOf(b)).toEqual({
      keys: 0,
      buckets: 0,
      lifetimeTokens: 0,
      lifetimeRequests: 0,
      bucketTokens: 0,
    });
  });
});

describe("db copy and the audit log", () => {
  test("revoked keys and the audit log go along, and the copy records itself in the target", async () => {
    const from = await sqlite();
    const to = await postgresDb();
    await from.importKeys?.(rows.slice(0, 10), { skipExisting: false });
    await from.revokeKey(rows[2]?.key.id ?? "", Date.UTC(2026, 11, 1));
    for (const action of ["key.create", "key.revoke"]) {
      await from.appendAudit({
        at: Date.UTC(2026, 11, 1),
        actor: { kind: "cli", name: "ops@host" },
        action,
        keyId: rows[2]?.key.id ?? null,
        keyPrefix: rows[2]?.key.keyPrefix ?? null,
        keyName: rows[2]?.key.name ?? null,
        changes: null,
      });
    }
    await copyDatabase(from, to, {
      allowNonEmpty: false,
      dryRun: false,
      actor: { kind: "cli", name: "ops@host" },
    });
    expect((await to.getKeyById(rows[2]?.key.id ?? ""))?.revokedAt).toBe(Date.UTC(2026, 11, 1));
    const log = await to.listAudit({ limit: 10, offset: 0 });
    expect(log.entries.map((e) => e.action).sort()).toEqual([
      "data.copy",
      "key.create",
      "key.revoke",
    ]);
    expect(log.entries.find((e) => e.action === "data.copy")?.changes).toMatchObject({
      from: "sqlite",
      keys: 10,
      audit_entries: 2,
    });
    // The copied entries keep their ids; new ones follow them.
    const { id: _, ...copied } = log.entries[0] as NonNullable<(typeof log.entries)[0]>;
    await to.appendAudit({ ...copied, at: Date.UTC(2027, 0, 1) });
    expect((await to.listAudit({ limit: 10, offset: 0 })).total).toBe(4);
  });
});

describe("db copy and the per-model history", () => {
  test("hourly per-model rows go along, SQLite to PostgreSQL and back; not into a target with keys", async () => {
    const a = await sqlite();
    const keys = [exportRow(1, 1), exportRow(2, 1)];
    await a.importKeys?.(keys, { skipExisting: false });
    const row = (keyId: string, model: string, hour: number) => ({
      keyId,
      model,
      bucketStart: hour * 3_600_000,
      input: 10 + hour,
      output: 5,
      cacheRead: 2,
      cacheWrite: 1,
      units: 40 + hour,
      requests: 2,
      spendMicros: 9,
    });
    const [k1, k2] = keys.map((k) => k.key.id) as [string, string];
    await a.applyUsage({
      instanceId: "models",
      firstSeq: 1,
      lastSeq: 1,
      keys: keys.map((k) => ({
        keyId: k.key.id,
        tokens: 0,
        requests: 0,
        lastUsedAt: 1,
        buckets: [],
      })),
      models: [row(k1, "glm-4.7", 1), row(k1, "glm-5", 2), row(k2, "glm-4.7", 3)],
    });
    const expected = await a.modelUsage(0, 10 * 3_600_000);
    expect(expected).toHaveLength(3);

    const pg = await postgresDb();
    await copyDatabase(a, pg, { allowNonEmpty: false, dryRun: false });
    expect(await pg.modelUsage(0, 10 * 3_600_000)).toEqual(expected);
    const b = await sqlite();
    await copyDatabase(pg, b, { allowNonEmpty: false, dryRun: false });
    expect(await b.modelUsage(0, 10 * 3_600_000)).toEqual(expected);

    // A copy into a target that already holds keys leaves its history alone.
    await copyDatabase(a, b, { allowNonEmpty: true, dryRun: false });
    expect(await b.modelUsage(0, 10 * 3_600_000)).toEqual(expected);
  }, 60_000);
});
