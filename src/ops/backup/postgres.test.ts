import { afterEach, describe, expect, setDefaultTimeout, test } from "bun:test";
import { copyFileSync } from "node:fs";
import { join } from "node:path";
import {
  damage,
  type Fixture,
  modelHistory,
  postgresFixture,
  rows,
  seedModelUsage,
  snapshot,
  sqliteFixture,
} from "../../../test/harness/backup-fixtures.ts";
import { testPostgres } from "../../../test/harness/postgres.ts";
import { describeNeedingPostgres, NEEDS_SERVER } from "../../../test/harness/require-postgres.ts";
import { openPostgresStorage } from "../../storage/postgres/index.ts";
import type { Storage } from "../../storage/types.ts";
import { type CreateBackupOptions, createBackup } from "./create.ts";
import { BackupError, BackupRejectedError, RestoreRefusedError } from "./errors.ts";
import { type RestoreOptions, restoreBackup } from "./restore.ts";
import { knownMigrations } from "./schema-version.ts";
import { verifyBackup } from "./verify.ts";

const shipped = knownMigrations("postgres");

// PostgreSQL: the logical format runs everywhere (PGlite too); pg_dump, and
// anything that needs a second connection at the same time, needs a server.

const pg = await testPostgres();
const server = pg.shared;

// Generous: these machines are shared, and a backup is real I/O.
setDefaultTimeout(30_000);

const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0)) await c();
});

async function pgFixture(n = 40): Promise<Fixture> {
  const fx = await postgresFixture(rows(n), [["i_a", 7]]);
  cleanups.push(fx.cleanup);
  return fx;
}

async function liteFixture(n = 40): Promise<Fixture> {
  const fx = await sqliteFixture(rows(n), [["i_b", 3]]);
  cleanups.push(fx.cleanup);
  return fx;
}

const backup = (fx: Fixture, o: Partial<CreateBackupOptions> = {}) =>
  createBackup({
    target: fx.target,
    dir: join(fx.dir, "backups"),
    compress: true,
    format: server ? "native" : "logical",
    origin: "manual",
    ...o,
  });

const restore = (fx: Fixture, file: string, o: Partial<RestoreOptions> = {}) =>
  restoreBackup({
    file,
    target: fx.target,
    journalDir: join(fx.dir, "journal"),
    backupDir: join(fx.dir, "backups"),
    compress: true,
    force: false,
    preRestoreFormat: server ? "native" : "logical",
    confirm: async () => {},
    ...o,
  });

async function change(fx: Fixture): Promise<void> {
  const s = fx.open();
  await s.importKeys?.(rows(1, 2, 500), { skipExisting: false });
  await s.deleteKey("key_import_0003");
  await s.applyUsage({ instanceId: "i_a", firstSeq: 12, lastSeq: 12, keys: [] });
  await s.close();
}

/** Charges 3 tokens at a time to a key, all along, until stopped; `started` once some are in. */
function load(s: Storage, keys: number): { started: Promise<void>; stop(): Promise<void> } {
  let running = true;
  let seq = 100;
  let markStarted = () => {};
  const started = new Promise<void>((resolve) => {
    markStarted = resolve;
  });
  const loop = (async () => {
    while (running) {
      if (seq === 110) markStarted();
      seq++;
      await s.applyUsage({
        instanceId: "i_load",
        firstSeq: seq,
        lastSeq: seq,
        keys: [
          {
            keyId: `key_import_${String(seq % keys).padStart(4, "0")}`,
            tokens: 3,
            requests: 1,
            lastUsedAt: seq,
            buckets: [{ bucketStart: 0, tokens: 3, requests: 1 }],
          },
        ],
      });
    }
  })();
  return {
    started,
    async stop() {
      running = false;
      await loop;
    },
  };
}

describe(`PostgreSQL backup and restore (${pg.kind})`, () => {
  test("logical round trip: keys and usage identical after restore", async () => {
    const fx = await pgFixture();
    const before = await snapshot(fx);
    const plain = await backup(fx, { format: "logical", compress: false });
    expect((await verifyBackup(plain.path)).ok).toBe(true);
    const b = await backup(fx, { format: "logical" });
    expect(b.manifest).toMatchObject({
      kind: "postgres",
      format: "logical",
      compression: "gzip",
      counts: { keys: 40, usageBuckets: 120, checkpoints: 1 },
      // Whatever migrations this version ships, all applied.
      schema: { migrations: shipped.length, latest: shipped.at(-1)?.tag },
    });
    await change(fx);
    const r = await restore(fx, b.path);
    expect(r.restored.keys).toBe(40);
    const after = await snapshot(fx);
    expect(after.keys).toEqual(before.keys);
    expect(after.checkpoints).toEqual([{ instanceId: "i_a", lastSeq: 12 }]);
  });

  test("a SQLite logical backup restores into PostgreSQL, and back", async () => {
    const lite = await liteFixture();
    const before = await snapshot(lite);
    const fromLite = await backup(lite, { format: "logical" });
    const fx = await pgFixture(5);
    await restore(fx, fromLite.path);
    let after = await snapshot(fx);
    expect(after.keys).toEqual(before.keys);
    // The backup's checkpoint comes along; the one the database knew stays.
    expect(after.checkpoints).toEqual([
      { instanceId: "i_a", lastSeq: 7 },
      { instanceId: "i_b", lastSeq: 3 },
    ]);
    const fromPg = await backup(fx, { format: "logical" });
    const other = await liteFixture(2);
    await restore(other, fromPg.path, { preRestoreFormat: "native" });
    after = await snapshot(other);
    expect(after.keys).toEqual(before.keys);
    expect(after.checkpoints.map((c) => c.instanceId)).toEqual(["i_a", "i_b"]);
  });

  test("without pg_dump installed, a backup is a logical export, and says so", async () => {
    const fx = await pgFixture(3);
    const path = process.env.PATH;
    process.env.PATH = "/nonexistent";
    try {
      const b = await backup(fx, { format: "native" });
      expect(b.manifest.format).toBe("logical");
      expect(b.warnings).toEqual(["pg_dump is not installed; wrote a logical export instead"]);
    } finally {
      process.env.PATH = path;
    }
  });

  test("a SQLite-format backup is refused by PostgreSQL with a clear message; nothing changes", async () => {
    const lite = await liteFixture();
    const b = await backup(lite, { format: "native" });
    const fx = await pgFixture();
    const before = await snapshot(fx);
    const r = restore(fx, b.path);
    await expect(r).rejects.toBeInstanceOf(BackupRejectedError);
    await expect(r).rejects.toThrow(
      /this is a SQLite backup \(sqlite format\) and the configured database is PostgreSQL; only logical backups move between kinds/,
    );
    expect(await snapshot(fx)).toEqual(before);
  });

  test("a damaged logical backup is refused by verify and restore; nothing changes", async () => {
    const fx = await pgFixture();
    for (const how of ["truncated", "flipped", "empty"] as const) {
      const b = await backup(fx, { format: "logical" });
      const before = await snapshot(fx);
      damage(b.path, how);
      expect((await verifyBackup(b.path)).ok).toBe(false);
      await expect(restore(fx, b.path)).rejects.toBeInstanceOf(BackupRejectedError);
      expect(await snapshot(fx)).toEqual(before);
    }
  });

  describeNeedingPostgres(
    "with a server (pg_dump, damaged archives, concurrent writes, other sessions connected)",
    server ? undefined : NEEDS_SERVER,
    () => {
      test("pg_dump round trip: keys and usage identical; the pre-restore backup undoes it", async () => {
        const fx = await pgFixture();
        const before = await snapshot(fx);
        const b = await backup(fx);
        expect(b.manifest).toMatchObject({
          kind: "postgres",
          format: "pg_dump",
          compression: "pg_dump",
          counts: { keys: 40, usageBuckets: 120, checkpoints: 1 },
        });
        expect(b.path).toEndWith(".dump");
        const plain = await backup(fx, { compress: false });
        expect(plain.manifest.compression).toBe("none");
        expect(plain.manifest.payload.bytes).toBeGreaterThan(b.manifest.payload.bytes);
        await change(fx);
        const changed = await snapshot(fx);
        const r = await restore(fx, plain.path);
        expect((await snapshot(fx)).keys).toEqual(before.keys);
        expect(r.preRestore?.manifest.format).toBe("pg_dump");
        await restore(fx, r.preRestore?.path as string);
        expect(await snapshot(fx)).toEqual(changed);
      });

      test("a damaged pg_dump archive is refused by verify and restore; nothing changes", async () => {
        const fx = await pgFixture();
        const good = await backup(fx);
        const before = await snapshot(fx);
        for (const how of ["truncated", "flipped", "empty"] as const) {
          const b = { path: join(fx.dir, `${how}.dump`) };
          copyFileSync(good.path, b.path);
          copyFileSync(good.manifestPath, `${b.path}.manifest.json`);
          damage(b.path, how);
          const v = await verifyBackup(b.path);
          expect(v.ok ? "" : v.code).toBe(how === "flipped" ? "checksum" : how);
          await expect(restore(fx, b.path)).rejects.toBeInstanceOf(BackupRejectedError);
          expect(await snapshot(fx)).toEqual(before);
        }
      });

      test("a pg_dump archive is refused by SQLite (only logical backups cross), and needs pg_restore", async () => {
        const fx = await pgFixture();
        const b = await backup(fx);
        const lite = await liteFixture();
        await expect(restore(lite, b.path)).rejects.toThrow(
          /this is a PostgreSQL backup \(pg_dump format\) and the configured database is SQLite/,
        );
        // Without pg_restore an archive cannot be checked: said so, not called damaged.
        const path = process.env.PATH;
        process.env.PATH = "/nonexistent";
        try {
          const v = verifyBackup(b.path);
          await expect(v).rejects.toBeInstanceOf(BackupError);
          await expect(v).rejects.not.toBeInstanceOf(BackupRejectedError);
          await expect(v).rejects.toThrow(/pg_restore is not installed/);
        } finally {
          process.env.PATH = path;
        }
      });

      test("backups taken while usage is written concurrently are consistent snapshots", async () => {
        const fx = await pgFixture(200);
        const writer = openPostgresStorage({
          url: (fx.target as { url: string }).url,
          poolMax: 4,
        });
        const first = await backup(fx, { format: "logical" });
        const gap = first.manifest.counts.lifetimeTokens - first.manifest.counts.bucketTokens;
        const l = load(writer, 200);
        await l.started;
        const made = await Promise.all([backup(fx), backup(fx, { format: "logical" })]);
        await l.stop();
        await writer.close();
        for (const b of made) {
          expect((await verifyBackup(b.path)).ok).toBe(true);
          // Each charge adds to a key's total and to its bucket in one
          // transaction: a consistent snapshot keeps the difference.
          const c = b.manifest.counts;
          expect(c.lifetimeTokens - c.bucketTokens).toBe(gap);
          expect(c.bucketTokens).toBeGreaterThan(first.manifest.counts.bucketTokens);
        }
      });

      test("restore refuses while other Tollgate sessions are connected; --force restores in one transaction", async () => {
        const fx = await pgFixture();
        const b = await backup(fx, { format: "logical" });
        await change(fx);
        const changed = await snapshot(fx);
        const gateway = openPostgresStorage({
          url: (fx.target as { url: string }).url,
          poolMax: 2,
        });
        await gateway.ping();
        try {
          const refused = restore(fx, b.path);
          await expect(refused).rejects.toBeInstanceOf(RestoreRefusedError);
          await expect(refused).rejects.toThrow(
            /other Tollgate connection\(s\) to this database are open/,
          );
          expect(await snapshot(fx)).toEqual(changed);
          // With --force, a gateway flushing all along sees the old data or the new.
          const l = load(gateway, 40);
          await l.started;
          const r = await restore(fx, b.path, { force: true });
          await l.stop();
          expect(r.warnings[0]).toContain("restored anyway");
        } finally {
          await gateway.close();
        }
        const after = await snapshot(fx);
        expect(after.keys.map((k) => k.key.id)).toEqual(rows(40).map((r) => r.key.id));
        // Every charge the load made after the restore went to totals and
        // buckets alike, once: the restored data stays consistent.
        const gap = (keys: typeof after.keys) =>
          keys.reduce(
            (sum, k) => sum + k.key.totalTokens - k.buckets.reduce((t, bk) => t + bk.tokens, 0),
            0,
          );
        expect(gap(after.keys)).toBe(gap(rows(40)));
      });
    },
  );
});

describe("PostgreSQL: per-model history across a backup and restore", () => {
  for (const format of [...(server ? ["native" as const] : []), "logical" as const]) {
    test(`the hourly per-model rows of a ${format} backup come back as they were`, async () => {
      const fx = await pgFixture();
      const seeded = await seedModelUsage(fx);
      expect(seeded.map((r) => r.model)).toEqual(["glm-4.7", "glm-5"]);
      const b = await backup(fx, { format });
      // More usage after the backup: the restore takes the history back to the backup's.
      await seedModelUsage(fx, "i_models_later");
      expect((await modelHistory(fx))[0]?.units).toBe(2 * (seeded[0]?.units ?? 0));
      await restore(fx, b.path);
      expect(await modelHistory(fx)).toEqual(seeded);
    });
  }
});
