import { afterEach, beforeEach, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createKey } from "../keys/service.ts";
import type { Logger } from "../log.ts";
import { openSqliteStorage } from "../storage/sqlite/index.ts";
import type { Storage } from "../storage/types.ts";
import { BUCKET_MS, WINDOW_MS, windowFloor } from "../time/buckets.ts";
import { retentionCutoff, UsagePruner } from "./retention.ts";

const DAY = 24 * 3_600_000;
const NOW = Date.UTC(2026, 10, 28, 12, 0, 0);

function recorder() {
  const lines: Array<{ level: string; fields: unknown; msg: unknown }> = [];
  const at =
    (level: string) =>
    (fields: unknown, msg?: unknown): void => {
      lines.push(
        typeof fields === "string" ? { level, fields: {}, msg: fields } : { level, fields, msg },
      );
    };
  const log = { info: at("info"), warn: at("warn"), debug: at("debug") } as unknown as Pick<
    Logger,
    "info" | "warn" | "debug"
  >;
  return { log, lines };
}

describe("retentionCutoff", () => {
  test.each([
    ["30 days, on a bucket boundary", NOW, 30, NOW - 30 * DAY],
    ["30 days, mid-bucket: floored to the bucket's start", NOW + 61_000, 30, NOW - 30 * DAY],
    ["1 day", NOW + BUCKET_MS - 1, 1, NOW - DAY],
    ["exactly the quota window", NOW, 5 / 24, NOW - WINDOW_MS],
  ])("%s", (_, now, days, expected) => {
    const cutoff = retentionCutoff(now, days);
    expect(cutoff).toBe(expected);
    // Never inside the quota window.
    expect(cutoff).toBeLessThanOrEqual(windowFloor(now));
  });

  test("a retention shorter than the quota window is refused", () => {
    expect(() => retentionCutoff(NOW, 4 / 24)).toThrow(RangeError);
    expect(() => retentionCutoff(NOW, 0)).toThrow(/quota window/);
    const { log } = recorder();
    expect(
      () =>
        new UsagePruner({
          storage: { pruneUsage: async () => 0 },
          clock: () => NOW,
          log,
          retentionDays: 0.1,
          healthy: () => true,
        }),
    ).toThrow(RangeError);
  });
});

describe("UsagePruner on a SQLite file", () => {
  let dir: string;
  let s: Storage;
  let now: number;
  let seq = 0;
  beforeEach(async () => {
    dir = mkdtempSync(join(tmpdir(), "tollgate-retention-"));
    s = openSqliteStorage(join(dir, "tollgate.db"));
    await s.migrate();
    now = NOW;
  });
  afterEach(async () => {
    await s.close();
    rmSync(dir, { recursive: true, force: true });
  });

  async function charge(keyId: string, ages: number[]) {
    const buckets = ages.map((age) => ({ bucketStart: NOW - age, tokens: 10, requests: 1 }));
    seq++;
    await s.applyUsage({
      instanceId: "i",
      firstSeq: seq,
      lastSeq: seq,
      keys: [{ keyId, tokens: 10 * ages.length, requests: ages.length, lastUsedAt: NOW, buckets }],
    });
  }

  test("deletes buckets past the retention in chunks, keeps the rest and the totals; a moved clock prunes more", async () => {
    const a = (await createKey(s, { name: "a", tokenLimit: 1 }, NOW - 60 * DAY)).record;
    const b = (await createKey(s, { name: "b", tokenLimit: 1 }, NOW - 60 * DAY)).record;
    await charge(a.id, [40 * DAY, 31 * DAY, 30 * DAY, 29 * DAY, 3_600_000]);
    await charge(b.id, [35 * DAY, 30 * DAY + BUCKET_MS, 1 * DAY]);
    const { log, lines } = recorder();
    const pruner = new UsagePruner({
      storage: s,
      clock: () => now,
      log,
      retentionDays: 30,
      healthy: () => true,
      chunk: 2,
    });

    expect(await pruner.runOnce()).toEqual({ ran: true, deleted: 4, cutoff: NOW - 30 * DAY });
    const ages = async (id: string) =>
      (await s.usageSince(id, 0)).map((x) => (NOW - x.bucketStart) / DAY);
    // A bucket that started exactly at the cutoff stays.
    expect(await ages(a.id)).toEqual([30, 29, 1 / 24]);
    expect(await ages(b.id)).toEqual([1]);
    expect(await s.getKeyById(a.id)).toMatchObject({ totalTokens: 50, totalRequests: 5 });
    expect(await s.getKeyById(b.id)).toMatchObject({ totalTokens: 30, totalRequests: 3 });
    expect(lines).toEqual([
      {
        level: "info",
        fields: {
          deleted: 4,
          before: new Date(NOW - 30 * DAY).toISOString(),
          retentionDays: 30,
          ms: 0,
        },
        msg: "usage history pruned",
      },
    ]);

    // Nothing more at the same time: logged at debug only.
    expect(await pruner.runOnce()).toMatchObject({ ran: true, deleted: 0 });
    expect(lines.at(-1)?.level).toBe("debug");

    now = NOW + 2 * DAY;
    expect(await pruner.runOnce()).toMatchObject({ ran: true, deleted: 2 });
    expect(await ages(a.id)).toEqual([1 / 24]);
    expect(await ages(b.id)).toEqual([1]);
    expect(await s.getKeyById(a.id)).toMatchObject({ totalTokens: 50, totalRequests: 5 });
  });

  test("skips while the database is degraded", async () => {
    const a = (await createKey(s, { name: "a", tokenLimit: 1 }, NOW)).record;
    await charge(a.id, [40 * DAY]);
    let healthy = false;
    const { log } = recorder();
    const pruner = new UsagePruner({
      storage: s,
      clock: () => now,
      log,
      retentionDays: 30,
      healthy: () => healthy,
    });
    expect(await pruner.runOnce()).toEqual({ ran: false, reason: "degraded" });
    expect(await s.usageSince(a.id, 0)).toHaveLength(1);
    healthy = true;
    expect(await pruner.runOnce()).toMatchObject({ ran: true, deleted: 1 });
  });
});

/**
 * A timer the test drives: `next()` waits for the pruner to ask for a
 * timeout and returns its delay and a `fire` that runs it.
 */
function fakeTimers() {
  type Entry = { ms: number; fn: () => void; state: "pending" | "fired" | "cleared" };
  const entries: Entry[] = [];
  let waiting: ((e: Entry) => void) | undefined;
  const pendingEntry = () => entries.find((e) => e.state === "pending");
  return {
    set(fn: () => void, ms: number): unknown {
      const e: Entry = { ms, fn, state: "pending" };
      entries.push(e);
      waiting?.(e);
      waiting = undefined;
      return e;
    },
    clear(handle: unknown): void {
      const e = handle as Entry;
      if (e.state === "pending") e.state = "cleared";
    },
    async next(): Promise<{ ms: number; fire: () => void }> {
      const e =
        pendingEntry() ??
        (await new Promise<Entry>((resolve) => {
          waiting = resolve;
        }));
      return {
        ms: e.ms,
        fire: () => {
          e.state = "fired";
          e.fn();
        },
      };
    },
    pending: () => entries.filter((e) => e.state === "pending").map((e) => e.ms),
    created: () => entries.length,
  };
}

describe("UsagePruner scheduling", () => {
  const base = { clock: () => NOW, retentionDays: 30, healthy: () => true };

  test("a failing database is logged, never thrown", async () => {
    const { log, lines } = recorder();
    const pruner = new UsagePruner({
      ...base,
      log,
      storage: {
        pruneUsage: async () => {
          throw new Error("connection refused");
        },
      },
    });
    expect(await pruner.runOnce()).toEqual({ ran: false, reason: "failed" });
    expect(lines).toMatchObject([{ level: "warn", fields: { err: "connection refused" } }]);
  });

  test("yields to the event loop between chunks", async () => {
    let tick = false;
    const seen: boolean[] = [];
    const { log } = recorder();
    const pruner = new UsagePruner({
      ...base,
      log,
      chunk: 10,
      storage: {
        // Answers without any I/O: without a yield, the loop would run on
        // microtasks alone and nothing else would get a turn.
        pruneUsage: async () => {
          seen.push(tick);
          return seen.length < 4 ? 10 : 3;
        },
      },
    });
    setImmediate(() => {
      tick = true;
    });
    expect(await pruner.runOnce()).toMatchObject({ deleted: 33 });
    expect(seen).toEqual([false, true, true, true]);
  });

  test("first run a minute after start, then hourly after each run ends; stop ends it", async () => {
    // The timer is the test's: each step is taken when the pruner asks for
    // it, so a busy machine cannot reorder anything.
    const timers = fakeTimers();
    let calls = 0;
    const { log } = recorder();
    const pruner = new UsagePruner({
      ...base,
      log,
      timer: timers,
      storage: {
        pruneUsage: async () => {
          calls++;
          return 0;
        },
      },
    });
    pruner.start();
    let next = await timers.next();
    expect(next.ms).toBe(60_000);
    expect(calls).toBe(0);
    for (let run = 1; run <= 3; run++) {
      next.fire();
      next = await timers.next();
      expect(calls).toBe(run);
      expect(next.ms).toBe(3_600_000);
    }
    await pruner.stop();
    expect(timers.pending()).toEqual([]);
    expect(calls).toBe(3);
  });

  test("a run in progress at stop schedules no further run", async () => {
    const timers = fakeTimers();
    let release = () => {};
    const gate = new Promise<void>((r) => {
      release = r;
    });
    const { log } = recorder();
    const pruner = new UsagePruner({
      ...base,
      log,
      timer: timers,
      firstRunMs: 5,
      storage: { pruneUsage: () => gate.then(() => 0) },
    });
    pruner.start();
    (await timers.next()).fire();
    const stopping = pruner.stop();
    release();
    await stopping;
    // Let the timer's callback finish after the run it awaited.
    await Bun.sleep(0);
    expect(timers.pending()).toEqual([]);
    expect(timers.created()).toBe(1);
  });

  test("stop waits for the chunk in progress, and no further chunk starts", async () => {
    let release = () => {};
    const gate = new Promise<void>((r) => {
      release = r;
    });
    let calls = 0;
    const { log } = recorder();
    const pruner = new UsagePruner({
      ...base,
      log,
      chunk: 5,
      storage: {
        pruneUsage: async () => {
          calls++;
          await gate;
          return 5;
        },
      },
    });
    const run = pruner.runOnce();
    let stopped = false;
    const stopping = pruner.stop().then(() => {
      stopped = true;
    });
    await Bun.sleep(20);
    expect(stopped).toBe(false);
    release();
    await stopping;
    expect(await run).toMatchObject({ ran: true, deleted: 5 });
    expect(calls).toBe(1);
    expect(await pruner.runOnce()).toEqual({ ran: false, reason: "stopped" });
  });

  test("stop does not wait for ever on a hung database", async () => {
    const { log, lines } = recorder();
    const pruner = new UsagePruner({
      ...base,
      log,
      stopWaitMs: 30,
      storage: { pruneUsage: () => new Promise<number>(() => {}) },
    });
    void pruner.runOnce();
    const t = performance.now();
    await pruner.stop();
    expect(performance.now() - t).toBeLessThan(1000);
    expect(lines.at(-1)?.level).toBe("warn");
  });
});

describe("audit retention", () => {
  let dir: string;
  let storage: Storage;
  beforeEach(async () => {
    dir = mkdtempSync(join(tmpdir(), "tollgate-audit-retention-"));
    storage = openSqliteStorage(join(dir, "t.db"));
    await storage.migrate();
    for (const at of [NOW - 10 * DAY, NOW - 8 * DAY, NOW - DAY]) {
      await storage.appendAudit({
        at,
        actor: { kind: "cli", name: "ops@host" },
        action: "key.update",
        keyId: "k",
        keyPrefix: "pk_x",
        keyName: "x",
        changes: null,
      });
    }
  });
  afterEach(async () => {
    await storage.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const run = (auditRetentionDays: number | undefined) =>
    new UsagePruner({
      storage,
      clock: () => NOW,
      log: recorder().log,
      retentionDays: 30,
      auditRetentionDays,
      healthy: () => true,
      chunk: 1,
    }).runOnce();

  test("AUDIT_RETENTION_DAYS unset keeps every entry", async () => {
    await run(undefined);
    expect((await storage.listAudit({ limit: 10, offset: 0 })).total).toBe(3);
  });

  test("entries older than AUDIT_RETENTION_DAYS are pruned by the retention job", async () => {
    await run(7);
    const left = await storage.listAudit({ limit: 10, offset: 0 });
    expect(left.entries.map((e) => e.at)).toEqual([NOW - DAY]);
  });
});

describe("UsagePruner and the per-model history", () => {
  test("hourly model rows are pruned by the same cutoff as the buckets", async () => {
    const dir = mkdtempSync(join(tmpdir(), "retention-models-"));
    const storage = await openSqliteStorage(join(dir, "t.db"));
    try {
      await storage.migrate();
      const { record } = await createKey(storage, { name: "m", tokenLimit: 1 }, NOW - 40 * DAY);
      const HOUR = 3_600_000;
      const row = (bucketStart: number) => ({
        keyId: record.id,
        model: "glm-4.7",
        bucketStart,
        input: 1,
        output: 1,
        cacheRead: 0,
        cacheWrite: 0,
        units: 2,
        requests: 1,
        spendMicros: 3,
      });
      await storage.applyUsage({
        instanceId: "r",
        firstSeq: 1,
        lastSeq: 1,
        keys: [{ keyId: record.id, tokens: 4, requests: 2, lastUsedAt: NOW, buckets: [] }],
        models: [row(NOW - 31 * DAY), row(NOW - HOUR)],
      });
      const { log } = recorder();
      const pruner = new UsagePruner({
        storage,
        clock: () => NOW,
        log,
        retentionDays: 30,
        healthy: () => true,
      });
      const outcome = await pruner.runOnce();
      expect(outcome).toMatchObject({ ran: true, deleted: 1 });
      const left = await storage.modelUsage(0, NOW + DAY, record.id);
      expect(left).toEqual([
        {
          keyId: record.id,
          model: "glm-4.7",
          input: 1,
          output: 1,
          cacheRead: 0,
          cacheWrite: 0,
          units: 2,
          requests: 1,
          spendMicros: 3,
        },
      ]);
    } finally {
      await storage.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
