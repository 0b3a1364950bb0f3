import { afterEach, describe, expect, setDefaultTimeout, test } from "bun:test";
import { createHash } from "node:crypto";
import { copyFileSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import {
  damage,
  type Fixture,
  modelHistory,
  rows,
  seedModelUsage,
  snapshot,
  sqliteFixture,
} from "../../../test/harness/backup-fixtures.ts";
import { Journal } from "../../accounting/journal.ts";
import { UsageLedger } from "../../accounting/ledger.ts";
import { silentLogger } from "../../log.ts";
import { openSqliteStorage } from "../../storage/sqlite/index.ts";
import { type CreateBackupOptions, createBackup } from "./create.ts";
import { BackupRejectedError, RestoreRefusedError } from "./errors.ts";
import { type BackupFormat, writeManifest } from "./manifest.ts";
import { type RestoreOptions, restoreBackup } from "./restore.ts";
import { knownMigrations } from "./schema-version.ts";
import { verifyBackup } from "./verify.ts";

const shipped = knownMigrations("sqlite");

// Generous: these machines are shared, and a backup is real I/O.
setDefaultTimeout(30_000);

const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0)) await c();
});

async function fixture(n = 40, cps: Array<[string, number]> = [["i_a", 7]]): Promise<Fixture> {
  const fx = await sqliteFixture(rows(n), cps);
  cleanups.push(fx.cleanup);
  return fx;
}

const backup = (fx: Fixture, o: Partial<CreateBackupOptions> = {}) =>
  createBackup({
    target: fx.target,
    dir: join(fx.dir, "backups"),
    compress: true,
    format: "native",
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
    confirm: async () => {},
    ...o,
  });

/** Changes the database: one key more, one key fewer, usage on another. */
async function change(fx: Fixture): Promise<void> {
  const s = fx.open();
  await s.importKeys?.(rows(1, 2, 500), { skipExisting: false });
  await s.deleteKey("key_import_0003");
  await s.applyUsage({
    instanceId: "i_a",
    firstSeq: 9,
    lastSeq: 9,
    keys: [
      {
        keyId: "key_import_0005",
        tokens: 1000,
        requests: 1,
        lastUsedAt: 1,
        buckets: [{ bucketStart: 0, tokens: 1000, requests: 1 }],
      },
    ],
  });
  await s.close();
}

describe("SQLite backup and restore", () => {
  for (const format of ["native", "logical"] as const) {
    for (const compress of [true, false]) {
      test(`round trip, ${format}${compress ? ", gzip" : ""}: keys and usage identical after restore`, async () => {
        const fx = await fixture();
        const before = await snapshot(fx);
        const b = await backup(fx, { format, compress });
        expect(b.manifest).toMatchObject({
          kind: "sqlite",
          format: format === "native" ? "sqlite" : "logical",
          compression: compress ? "gzip" : "none",
          counts: { keys: 40, usageBuckets: 120, checkpoints: 1 },
          // Whatever migrations this version ships, all applied.
          schema: { migrations: shipped.length, latest: shipped.at(-1)?.tag },
        });
        expect((await verifyBackup(b.path)).ok).toBe(true);
        await change(fx);
        expect(await snapshot(fx)).not.toEqual(before);
        const r = await restore(fx, b.path);
        expect(r.restored.keys).toBe(40);
        const after = await snapshot(fx);
        expect(after.keys).toEqual(before.keys);
        // The instance the database knew keeps its newer checkpoint (see checkpoints.ts).
        expect(after.checkpoints).toEqual([{ instanceId: "i_a", lastSeq: 9 }]);
      });
    }
  }

  test("restoring the pre-restore backup undoes a restore", async () => {
    const fx = await fixture();
    const b = await backup(fx);
    await change(fx);
    const changed = await snapshot(fx);
    const r = await restore(fx, b.path);
    expect(r.preRestore?.manifest.origin).toBe("pre-restore");
    expect(r.preRestore?.path).toContain("-pre-restore.db.gz");
    await restore(fx, r.preRestore?.path as string);
    expect(await snapshot(fx)).toEqual(changed);
  });

  test("a restore into a database that does not exist yet creates it (no pre-restore backup)", async () => {
    const fx = await fixture();
    const before = await snapshot(fx);
    const b = await backup(fx);
    const fresh = { ...fx, target: { type: "sqlite" as const, path: join(fx.dir, "new", "t.db") } };
    const r = await restore(fresh, b.path);
    expect(r.preRestore).toBeNull();
    expect(await snapshot({ open: () => openSqliteStorage(fresh.target.path) })).toEqual(before);
  });

  const damages = ["truncated", "flipped", "empty"] as const;
  for (const how of damages) {
    test(`a ${how} backup is refused by verify and by restore; the data stays`, async () => {
      const fx = await fixture();
      const b = await backup(fx);
      await change(fx);
      const changed = await snapshot(fx);
      damage(b.path, how);
      const v = await verifyBackup(b.path);
      expect(v.ok).toBe(false);
      if (!v.ok) {
        expect(v.code).toBe(how === "flipped" ? "checksum" : how);
        expect(v.reason).toMatch(
          how === "flipped" ? /checksum/ : how === "empty" ? /empty/ : /cut short/,
        );
      }
      await expect(restore(fx, b.path)).rejects.toBeInstanceOf(BackupRejectedError);
      expect(await snapshot(fx)).toEqual(changed);
      // Refused before anything: not even a pre-restore backup was taken.
      expect(readdirSync(join(fx.dir, "backups")).some((f) => f.includes("pre-restore"))).toBe(
        false,
      );
    });
  }

  test("a damaged manifest, a missing one and an unknown format are refused", async () => {
    const fx = await fixture();
    const b = await backup(fx);
    const text = await Bun.file(b.manifestPath).text();

    writeFileSync(b.manifestPath, text.replace('"origin": "manual"', '"origin": "scheduled"'));
    let v = await verifyBackup(b.path);
    expect(v.ok ? "" : v.reason).toContain("altered or damaged");

    // A well-formed manifest (its own checksum right) naming a format nobody knows.
    writeManifest(b.manifestPath, { ...b.manifest, format: "tar" as BackupFormat });
    v = await verifyBackup(b.path);
    expect(v.ok ? "" : v.code).toBe("unknown-format");
    expect(v.ok ? "" : v.reason).toContain('unknown backup format "tar"');
    await expect(restore(fx, b.path)).rejects.toThrow(/unknown backup format/);

    writeFileSync(b.manifestPath, "{ not json");
    expect((await verifyBackup(b.path)).ok).toBe(false);

    rmSync(b.manifestPath);
    v = await verifyBackup(b.path);
    expect(v.ok ? "" : v.code).toBe("missing");
    expect(v.ok ? "" : v.reason).toContain("manifest");
  });

  test("a payload swapped for another kind's is caught", async () => {
    const fx = await fixture();
    const native = await backup(fx, { compress: false });
    const logical = await backup(fx, { format: "logical", compress: false });
    // The logical payload under the SQLite backup's manifest, size and checksum fixed up.
    copyFileSync(logical.path, native.path);
    const v = await verifyBackup(native.path);
    expect(v.ok).toBe(false);
  });

  test("a logical backup from before keys had a concurrency limit restores them with none", async () => {
    const fx = await fixture(6);
    const before = await snapshot(fx);
    expect(before.keys.some((r) => r.key.maxConcurrent !== null)).toBe(true);
    const b = await backup(fx, { format: "logical", compress: false });
    // The key lines as an older version wrote them: no maxConcurrent field at all.
    const old = readFileSync(b.path, "utf8").replace(/"maxConcurrent":(null|\d+),/g, "");
    expect(old).not.toContain("maxConcurrent");
    writeFileSync(b.path, old);
    const bytes = readFileSync(b.path);
    writeManifest(b.manifestPath, {
      ...b.manifest,
      payload: { bytes: bytes.length, sha256: createHash("sha256").update(bytes).digest("hex") },
    });
    expect((await verifyBackup(b.path)).ok).toBe(true);
    await change(fx);
    await restore(fx, b.path);
    const after = await snapshot(fx);
    expect(after.keys.map((r) => r.key.maxConcurrent)).toEqual(before.keys.map(() => null));
    const withoutLimit = (r: (typeof before.keys)[number]) => ({
      ...r,
      key: { ...r.key, maxConcurrent: null },
    });
    expect(after.keys).toEqual(before.keys.map(withoutLimit));
  });

  test("restore refuses while a gateway holds the journal lock, and --force goes ahead safely", async () => {
    const fx = await fixture();
    const b = await backup(fx);
    await change(fx);
    const changed = await snapshot(fx);
    mkdirSync(join(fx.dir, "journal"), { recursive: true });
    // A live process that is not us: the test runner's parent.
    writeFileSync(join(fx.dir, "journal", "instance.lock"), String(process.ppid));
    const refused = restore(fx, b.path);
    await expect(refused).rejects.toBeInstanceOf(RestoreRefusedError);
    await expect(refused).rejects.toThrow(
      /a gateway \(process \d+\) is serving this database; stop it first/,
    );
    expect(await snapshot(fx)).toEqual(changed);
    const r = await restore(fx, b.path, { force: true });
    expect(r.warnings[0]).toContain("restored anyway");
    // A lock left by a process that is gone does not count.
    writeFileSync(join(fx.dir, "journal", "instance.lock"), "999999999");
    await restore(fx, b.path);
  });

  test("nothing changes when the operator does not confirm", async () => {
    const fx = await fixture();
    const b = await backup(fx);
    await change(fx);
    const changed = await snapshot(fx);
    await expect(
      restore(fx, b.path, {
        confirm: async (plan) => {
          expect(plan.manifest.counts.keys).toBe(40);
          expect(plan.current?.keys).toBe(40);
          throw new Error("no");
        },
      }),
    ).rejects.toThrow("no");
    expect(await snapshot(fx)).toEqual(changed);
  });

  test("a backup written while the database is written to is consistent and verifies", async () => {
    const fx = await fixture(300);
    const s = fx.open();
    let stop = false;
    let seq = 10;
    // A second connection writing all along (bun:sqlite is synchronous, so
    // interleave at every turn of the event loop).
    const writer = (async () => {
      while (!stop) {
        await s.applyUsage({
          instanceId: "i_w",
          firstSeq: ++seq,
          lastSeq: seq,
          keys: [
            {
              keyId: `key_import_${String(seq % 300).padStart(4, "0")}`,
              tokens: 3,
              requests: 1,
              lastUsedAt: seq,
              buckets: [{ bucketStart: 0, tokens: 3, requests: 1 }],
            },
          ],
        });
        await Bun.sleep(0);
      }
    })();
    const made = await Promise.all([backup(fx), backup(fx, { format: "logical" })]);
    stop = true;
    await writer;
    await s.close();
    for (const b of made) expect((await verifyBackup(b.path)).ok).toBe(true);
  });
});

describe("journal checkpoints across restores", () => {
  test("usage journaled after one restore is replayed exactly once after another", async () => {
    const fx = await fixture(3, []);
    const journalDir = join(fx.dir, "journal");
    const key = "key_import_0001";
    const clock = () => Date.UTC(2026, 10, 28, 12);
    const log = silentLogger();
    const ledger = async () => {
      const storage = fx.open();
      const journal = Journal.open(journalDir, "i_gw");
      const l = await UsageLedger.open({ storage, journal, instanceId: "i_gw", clock, log });
      return { storage, journal, l };
    };
    const totalOf = async () => {
      const s = fx.open();
      const k = await s.getKeyById(key);
      await s.close();
      return k?.totalTokens ?? -1;
    };

    // Charges 1-2, then a backup (checkpoint 2), then charges 3-5.
    let g = await ledger();
    g.l.record(key, 100);
    g.l.record(key, 100);
    await g.l.close();
    await g.storage.close();
    const old = await backup(fx);
    g = await ledger();
    for (let i = 0; i < 3; i++) g.l.record(key, 10);
    await g.l.close();
    await g.storage.close();
    const base = await totalOf();

    // Restore the old backup: its checkpoint (2) must not come back, or the
    // next charges would be numbered 3, 4… again.
    const r = await restore(fx, old.path);
    expect(await totalOf()).toBe(base - 30);
    // Charges 6 and 7, then a crash before they reach the database.
    g = await ledger();
    g.l.record(key, 1);
    g.l.record(key, 1);
    g.journal.close();
    await g.storage.close();

    // Undo the restore: the journal's two charges are replayed once on top.
    await restore(fx, r.preRestore?.path as string);
    g = await ledger();
    await g.l.close();
    await g.storage.close();
    expect(await totalOf()).toBe(base + 2);
    // And again: nothing is replayed twice.
    g = await ledger();
    await g.l.close();
    await g.storage.close();
    expect(await totalOf()).toBe(base + 2);
  });
});

describe("SQLite: per-model history across a backup and restore", () => {
  for (const format of ["native", "logical"] as const) {
    test(`the hourly per-model rows of a ${format} backup come back as they were`, async () => {
      const fx = await fixture();
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
