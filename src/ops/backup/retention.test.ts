import { afterAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { existsSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import {
  damage,
  type Fixture,
  rows,
  sqliteFixture,
} from "../../../test/harness/backup-fixtures.ts";
import { type CreatedBackup, createBackup, sourceOf } from "./create.ts";
import { listBackups } from "./list.ts";
import type { BackupOrigin } from "./manifest.ts";
import { pruneBackups } from "./retention.ts";

setDefaultTimeout(30_000);

const T0 = Date.UTC(2026, 10, 1, 2, 0, 0);
const HOUR = 3_600_000;
const fixtures: Fixture[] = [];
afterAll(async () => {
  for (const f of fixtures) await f.cleanup();
});

async function setUp() {
  const a = await sqliteFixture(rows(2, 1));
  const b = await sqliteFixture(rows(1, 1));
  fixtures.push(a, b);
  const dir = join(a.dir, "backups");
  const make = (fx: Fixture, origin: BackupOrigin, hour: number) =>
    createBackup({
      target: fx.target,
      dir,
      compress: true,
      format: "native",
      origin,
      clock: () => T0 + hour * HOUR,
    });
  const scheduled: CreatedBackup[] = [];
  for (let h = 0; h < 6; h++) scheduled.push(await make(a, "scheduled", h));
  const others = [
    await make(a, "manual", 0.5),
    await make(a, "pre-restore", 0.7),
    await make(b, "scheduled", 0.2),
  ];
  writeFileSync(join(dir, "notes.txt"), "keep me");
  return { a, dir, scheduled, others, source: sourceOf(a.target) };
}

const names = (dir: string) => readdirSync(dir).sort();

describe("retention", () => {
  test("keeps exactly the newest N scheduled backups of this database, nothing else is touched", async () => {
    const { dir, scheduled, others, source } = await setUp();
    const deleted = pruneBackups(dir, 2, source);
    expect(deleted.sort()).toEqual(
      scheduled
        .slice(0, 4)
        .map((b) => b.path)
        .sort(),
    );
    for (const b of scheduled.slice(0, 4)) {
      expect(existsSync(b.path)).toBe(false);
      expect(existsSync(b.manifestPath)).toBe(false);
    }
    for (const b of [...scheduled.slice(4), ...others]) {
      expect(existsSync(b.path)).toBe(true);
      expect(existsSync(b.manifestPath)).toBe(true);
    }
    expect(existsSync(join(dir, "notes.txt"))).toBe(true);
    // Running it again changes nothing.
    expect(pruneBackups(dir, 2, source)).toEqual([]);
  });

  test("0 keeps everything; N above the count keeps everything", async () => {
    const { dir, source } = await setUp();
    const before = names(dir);
    expect(pruneBackups(dir, 0, source)).toEqual([]);
    expect(pruneBackups(dir, 50, source)).toEqual([]);
    expect(names(dir)).toEqual(before);
  });

  test("a damaged newer backup does not count towards N and is left for inspection", async () => {
    const { dir, scheduled, source } = await setUp();
    const newest = scheduled[5] as CreatedBackup;
    damage(newest.path, "truncated");
    const deleted = pruneBackups(dir, 2, source);
    expect(deleted.sort()).toEqual(
      scheduled
        .slice(0, 3)
        .map((b) => b.path)
        .sort(),
    );
    expect(existsSync(newest.path)).toBe(true);
    // A manifest whose payload is gone (a crash mid-deletion) goes with the next run.
    rmSync((scheduled[3] as CreatedBackup).path);
    pruneBackups(dir, 1, source);
    expect(existsSync((scheduled[3] as CreatedBackup).manifestPath)).toBe(false);
  });
});

describe("listing", () => {
  test("newest first; damaged ones listed as damaged; other files ignored", async () => {
    const { dir, scheduled, others } = await setUp();
    rmSync((scheduled[1] as CreatedBackup).manifestPath);
    damage((scheduled[2] as CreatedBackup).path, "truncated");
    writeFileSync((scheduled[3] as CreatedBackup).manifestPath, "{");
    rmSync((scheduled[4] as CreatedBackup).path);
    writeFileSync(join(dir, ".tollgate-x.db.gz.tmp-1234"), "");
    const list = listBackups(dir);
    expect(list).toHaveLength(9);
    const times = list.map((b) => b.createdAt ?? "");
    expect(times).toEqual([...times].sort().reverse());
    const status = (b: CreatedBackup) => list.find((l) => l.path === b.path);
    expect(status(scheduled[0] as CreatedBackup)?.status).toBe("ok");
    expect(status(scheduled[1] as CreatedBackup)?.problem).toContain("manifest");
    // Without its manifest the time still comes from the name.
    expect(status(scheduled[1] as CreatedBackup)?.createdAt).toBe(
      new Date(T0 + HOUR).toISOString(),
    );
    expect(status(scheduled[2] as CreatedBackup)?.problem).toMatch(/bytes on disk/);
    expect(status(scheduled[3] as CreatedBackup)?.problem).toContain("not valid JSON");
    expect(status(scheduled[4] as CreatedBackup)?.problem).toContain("missing");
    for (const b of others) expect(status(b)?.status).toBe("ok");
    expect(listBackups(join(dir, "nope"))).toEqual([]);
  });
});
