import { describe, expect, test } from "bun:test";
import { fakes, holdQueries, T0 } from "../../test/fakes/usage-view.ts";
import type { StorageHealth } from "../storage/health.ts";
import { WEEK_MS, windowUsage } from "../time/buckets.ts";
import { coarsenOlder, UsageView } from "./usage-view.ts";

// A key's usage as admission sees it, read by the request itself: no
// background rounds, or their settings as requests see them. The rounds are
// in usage-view-rounds.test.ts.

describe("UsageView", () => {
  test("database buckets plus this instance's pending usage; re-read only when stale", async () => {
    const f = fakes();
    let now = T0;
    const view = new UsageView(f.storage, f.ledgerLike, () => now, 1000);
    f.db.rows = [{ bucketStart: T0, tokens: 100, requests: 1 }];
    f.ledger.pending.set(T0, 5);
    expect(windowUsage(await view.buckets("k"), now)).toBe(105);
    f.db.rows = [{ bucketStart: T0, tokens: 300, requests: 3 }];
    now += 500;
    expect(windowUsage(await view.buckets("k"), now)).toBe(105);
    expect(f.db.queries).toBe(1);
    now += 600;
    expect(windowUsage(await view.buckets("k"), now)).toBe(305);
    expect(f.db.queries).toBe(2);
  });

  test("our own flush counts at once, and stops counting twice once a later read includes it", async () => {
    const f = fakes();
    let now = T0;
    const view = new UsageView(f.storage, f.ledgerLike, () => now, 1000);
    await view.buckets("k");
    // A flush of 20 tokens commits: pending goes, the database has it.
    f.ledger.flushNo = 1;
    f.db.rows = [{ bucketStart: T0, tokens: 20, requests: 1 }];
    view.onFlushed(
      [
        {
          keyId: "k",
          tokens: 20,
          requests: 1,
          lastUsedAt: T0,
          buckets: [{ bucketStart: T0, tokens: 20, requests: 1 }],
        },
      ],
      1,
    );
    expect(windowUsage(await view.buckets("k"), now)).toBe(20);
    now += 1000;
    expect(windowUsage(await view.buckets("k"), now)).toBe(20);
  });

  test("a flush committed while a read is under way is counted, never lost", async () => {
    const f = fakes();
    let now = T0;
    const view = new UsageView(f.storage, f.ledgerLike, () => now, 1000, undefined, 5000);
    await view.buckets("k");
    now += 1000;
    let release: () => void = () => {};
    f.db.hold = new Promise((r) => {
      release = r;
    });
    const reading = view.buckets("k"); // snapshot taken before the flush below
    f.ledger.flushNo = 1;
    f.db.rows = [{ bucketStart: T0, tokens: 50, requests: 1 }];
    view.onFlushed(
      [
        {
          keyId: "k",
          tokens: 50,
          requests: 1,
          lastUsedAt: T0,
          buckets: [{ bucketStart: T0, tokens: 50, requests: 1 }],
        },
      ],
      1,
    );
    release();
    f.db.hold = undefined;
    expect(windowUsage(await reading, now)).toBe(50);
  });

  test("while the database is out, nothing is read; what is known is used", async () => {
    const f = fakes();
    let now = T0;
    const view = new UsageView(
      f.storage,
      f.ledgerLike,
      () => now,
      1000,
      f.health as unknown as StorageHealth,
    );
    f.db.rows = [{ bucketStart: T0, tokens: 70, requests: 1 }];
    await view.buckets("k");
    f.health.degraded = true;
    f.ledger.pending.set(T0, 9);
    now += 5000;
    expect(windowUsage(await view.buckets("k"), now)).toBe(79);
    expect(f.db.queries).toBe(1);
  });

  test("with rounds started, the default staleMs is 4 x refreshMs", async () => {
    const f = fakes();
    let now = T0;
    // refreshMs long enough that the timer never fires during the test.
    const view = new UsageView(f.storage, f.ledgerLike, () => now, 60_000);
    view.start({});
    await view.buckets("k");
    now += 4 * 60_000 - 1;
    await view.buckets("k");
    expect(f.db.queries).toBe(1);
    now += 1;
    await view.buckets("k");
    expect(f.db.queries).toBe(2);
    view.stop();
  });

  test("after stop(), requests re-read for themselves every refreshMs again", async () => {
    const f = fakes();
    let now = T0;
    const view = new UsageView(f.storage, f.ledgerLike, () => now, 60_000);
    view.start({ staleMs: 600_000 });
    await view.buckets("k");
    now += 60_000;
    await view.buckets("k");
    expect(f.db.queries).toBe(1); // rounds would keep it: within staleMs
    view.stop();
    await view.buckets("k");
    expect(f.db.queries).toBe(2);
    now += 59_999;
    await view.buckets("k");
    expect(f.db.queries).toBe(2);
    now += 1;
    await view.buckets("k");
    expect(f.db.queries).toBe(3);
  });

  test("readAfter (for /stats) waits for a read begun after the mark, not one under way", async () => {
    const f = fakes();
    let now = T0;
    const view = new UsageView(f.storage, f.ledgerLike, () => now, 60_000, undefined, 5);
    view.start({ staleMs: 100 });
    await view.buckets("k");
    now += 200;
    // A request's re-read begins, and is held: its snapshot lacks what comes next.
    const release = holdQueries(f.db);
    const earlier = view.buckets("k");
    // The caller reads its totals (which include 70 more tokens), then takes the mark.
    f.db.rows = [{ bucketStart: T0, tokens: 70, requests: 1 }];
    const mark = view.readMark();
    const fresh = view.buckets("k", { readAfter: mark });
    release();
    await earlier;
    expect(windowUsage(await fresh, now)).toBe(70);
    expect(f.db.queries).toBe(3);
    // A copy read after the mark is not read again for it.
    await view.buckets("k", { readAfter: mark });
    expect(f.db.queries).toBe(3);
    view.stop();
  });
});

describe("UsageView for a weekly key", () => {
  const HOUR = 60 * 60 * 1000;
  const BUCKET = 5 * 60 * 1000;

  test("reads a week back, keeps older hours merged, and never ages usage out early", async () => {
    const f = fakes();
    const now = T0;
    const view = new UsageView(f.storage, f.ledgerLike, () => now, 1000);
    // Two days ago, a whole hour of 5-minute buckets; and one bucket now.
    const hourStart = T0 - 48 * HOUR;
    f.db.rows = [
      ...Array.from({ length: 12 }, (_, i) => ({
        bucketStart: hourStart + i * BUCKET,
        tokens: 10,
        requests: 1,
      })),
      { bucketStart: T0, tokens: 7, requests: 1 },
    ];
    // A 5-hour key does not see the old hour.
    expect(windowUsage(await view.buckets("plain"), now)).toBe(7);
    const week = await view.buckets("weekly", { spanMs: WEEK_MS });
    expect(windowUsage(week, now, WEEK_MS)).toBe(127);
    expect(windowUsage(week, now)).toBe(7);
    // The old hour is one entry, kept at its newest bucket's start.
    expect(week).toContainEqual({ bucketStart: hourStart + 11 * BUCKET, tokens: 120 });
    expect(week.length).toBe(2);
    // A key that gains a weekly limit is read again, a week back.
    expect(windowUsage(await view.buckets("plain", { spanMs: WEEK_MS }), now, WEEK_MS)).toBe(127);
  });

  test("coarsenOlder merges only what is older than the floor", () => {
    const floor = T0 - 5 * HOUR;
    const merged = coarsenOlder(
      [
        { bucketStart: floor - HOUR, tokens: 1 },
        { bucketStart: floor - HOUR + BUCKET, tokens: 2 },
        { bucketStart: floor + BUCKET, tokens: 4 },
      ],
      floor,
    );
    expect(merged).toEqual([
      { bucketStart: floor - HOUR + BUCKET, tokens: 3 },
      { bucketStart: floor + BUCKET, tokens: 4 },
    ]);
  });
});
