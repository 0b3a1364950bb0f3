import { afterEach, describe, expect, setDefaultTimeout, test } from "bun:test";
import { readdirSync } from "node:fs";
import { join } from "node:path";
import {
  type Fixture,
  postgresFixture,
  rows,
  sqliteFixture,
} from "../../../test/harness/backup-fixtures.ts";
import { testPostgres } from "../../../test/harness/postgres.ts";
import { describeNeedingPostgres, NEEDS_SERVER } from "../../../test/harness/require-postgres.ts";
import { createLogger, type Logger } from "../../log.ts";
import { createBackup } from "./create.ts";
import { listBackups } from "./list.ts";
import { type BackupScheduler, holdLockUntil, startBackupScheduler } from "./scheduler.ts";

setDefaultTimeout(30_000);

const EVERY_SECOND = "* * * * * *";
const EVERY_TWO_SECONDS = "*/2 * * * * *";
const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

/** A logger whose lines the test can read. */
function capture(): { log: Logger; lines: Array<Record<string, unknown>> } {
  const lines: Array<Record<string, unknown>> = [];
  const log = createLogger("info", { write: (s: string) => lines.push(JSON.parse(s)) });
  return { log, lines };
}

function started(s: BackupScheduler): BackupScheduler {
  cleanups.push(() => s.stop());
  return s;
}

async function until(what: string, check: () => boolean, ms = 8000): Promise<void> {
  const end = performance.now() + ms;
  while (!check()) {
    if (performance.now() > end) throw new Error(`timed out waiting for ${what}`);
    await Bun.sleep(20);
  }
}

async function fixture(): Promise<Fixture> {
  const fx = await sqliteFixture(rows(5));
  cleanups.push(fx.cleanup);
  return fx;
}

describe("scheduled backups", () => {
  test("an every-second schedule fires, each run is logged, retention keeps the newest N", async () => {
    const fx = await fixture();
    const { log, lines } = capture();
    const dir = join(fx.dir, "backups");
    const s = started(
      startBackupScheduler({
        target: fx.target,
        schedule: EVERY_SECOND,
        dir,
        retain: 1,
        compress: true,
        log,
      }),
    );
    expect(s.nextRun()).toBeInstanceOf(Date);
    const written = () => lines.filter((l) => l.msg === "scheduled backup written");
    await until("two runs", () => written().length >= 2);
    await s.stop();
    const o = s.lastOutcome();
    expect(o?.status).toBe("ok");
    if (o?.status === "ok") {
      expect(o.keys).toBe(5);
      expect(o.pruned.length).toBe(1);
    }
    expect(written()[0]?.backup).toMatchObject({ status: "ok", keys: 5 });
    const kept = listBackups(dir);
    expect(kept).toHaveLength(1);
    expect(kept.every((b) => b.status === "ok" && b.manifest?.origin === "scheduled")).toBe(true);
  });

  test("a failing run is logged and kept as the last outcome; the schedule carries on", async () => {
    const fx = await fixture();
    const { log, lines } = capture();
    let calls = 0;
    const s = started(
      startBackupScheduler({
        target: fx.target,
        schedule: EVERY_SECOND,
        dir: join(fx.dir, "backups"),
        retain: 1,
        compress: true,
        log,
        create: async () => {
          calls++;
          throw new Error("disk full");
        },
      }),
    );
    await until("two failed runs", () => calls >= 2);
    await s.stop();
    expect(s.lastOutcome()).toMatchObject({ status: "failed", error: "disk full" });
    const failed = lines.filter((l) => l.msg === "scheduled backup failed");
    expect(failed.length).toBeGreaterThanOrEqual(2);
    expect(failed[0]?.level).toBe("error");
  });

  test("a failure never prunes: retention only follows a backup that succeeded", async () => {
    const fx = await fixture();
    const dir = join(fx.dir, "backups");
    for (let i = 0; i < 3; i++) {
      await createBackup({
        target: fx.target,
        dir,
        compress: true,
        format: "native",
        origin: "scheduled",
      });
    }
    const s = started(
      startBackupScheduler({
        target: fx.target,
        schedule: "0 2 * * *",
        dir,
        retain: 1,
        compress: true,
        log: capture().log,
        create: async () => {
          throw new Error("no");
        },
      }),
    );
    expect((await s.runNow()).status).toBe("failed");
    expect(readdirSync(dir).filter((f) => f.endsWith(".manifest.json"))).toHaveLength(3);
  });

  test("the lock is held to the end of the minute, never into the next run", () => {
    const t = Date.UTC(2026, 10, 28, 2, 0, 0);
    expect(holdLockUntil(t, t + 86_400_000)).toBe(t + 60_000);
    expect(holdLockUntil(t, t + 1000)).toBe(t + 500);
    expect(holdLockUntil(t, null)).toBe(t + 60_000);
  });
});

// Without a server nothing here can run: do not start PGlite just to find that out.
const pg = process.env.TEST_DATABASE_URL ? await testPostgres() : { shared: false as const };

describeNeedingPostgres(
  "two instances on one PostgreSQL database (the advisory lock)",
  pg.shared ? undefined : NEEDS_SERVER,
  () => {
    test("only one of them backs up each time the schedule fires", async () => {
      const fx = await postgresFixture(rows(5));
      cleanups.push(fx.cleanup);
      const dir = join(fx.dir, "backups");
      const runs = [capture(), capture()];
      const schedulers = runs.map(({ log }) =>
        started(
          startBackupScheduler({
            target: fx.target,
            // Every two seconds: the winner holds the lock for 1.5 s, ample on a busy machine.
            schedule: EVERY_TWO_SECONDS,
            dir,
            retain: 0,
            compress: true,
            log,
          }),
        ),
      );
      const outcomes = () => runs.flatMap((r) => r.lines.filter((l) => l.backup));
      await until("two slots", () => outcomes().length >= 4, 15_000);
      for (const s of schedulers) await s.stop();
      const bySlot = new Map<string, string[]>();
      for (const line of outcomes()) {
        const b = line.backup as { status: string; startedAt: string };
        const slot = b.startedAt.slice(0, 19);
        bySlot.set(slot, [...(bySlot.get(slot) ?? []), b.status]);
      }
      const both = [...bySlot.values()].filter((statuses) => statuses.length === 2);
      expect(both.length).toBeGreaterThan(0);
      for (const statuses of both) expect(statuses.sort()).toEqual(["ok", "skipped"]);
      const written = outcomes().filter((l) => (l.backup as { status: string }).status === "ok");
      expect(listBackups(dir)).toHaveLength(written.length);
    });
  },
);
