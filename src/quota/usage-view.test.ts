import { describe, expect, test } from "bun:test";
import type { UsageLedger } from "../accounting/ledger.ts";
import type { StorageHealth } from "../storage/health.ts";
import type { BucketUsage, KeyUsage, Storage } from "../storage/types.ts";
import { UsageView } from "./usage-view.ts";
import { BUCKET_MS, windowFloor, windowUsage } from "./window.ts";

const T0 = Date.UTC(2026, 10, 28, 12, 0, 0);

/** A database whose answers the test sets, and whose queries it can hold. */
function fakes() {
  const db = {
    rows: [] as BucketUsage[],
    /** Per-key answers; keys not here answer `rows`. */
    byKey: new Map<string, BucketUsage[]>(),
    queries: 0,
    /** Calls of usageSinceMany: the ids and `since` of each. */
    many: [] as Array<{ ids: string[]; since: number }>,
    hold: undefined as Promise<void> | undefined,
    fail: undefined as Error | undefined,
  };
  const answer = (keyId: string, since: number) =>
    (db.byKey.get(keyId) ?? db.rows).filter((r) => r.bucketStart >= since).map((r) => ({ ...r }));
  const storage = {
    usageSince: async (keyId: string, since: number) => {
      db.queries++;
      // The snapshot is taken as the query starts; a held query answers it later.
      const snapshot = answer(keyId, since);
      const hold = db.hold;
      if (hold) await hold;
      return snapshot;
    },
    usageSinceMany: async (ids: string[], since: number) => {
      db.many.push({ ids: [...ids], since });
      const snapshot = new Map(ids.map((id) => [id, answer(id, since)]));
      const hold = db.hold;
      if (hold) await hold;
      if (db.fail) throw db.fail;
      return snapshot;
    },
  } as unknown as Storage;
  const ledger = { flushNo: 0, pending: new Map<number, number>() };
  const ledgerLike = {
    get flushNo() {
      return ledger.flushNo;
    },
    pendingBuckets: () => ledger.pending,
  } as unknown as UsageLedger;
  const health = {
    degraded: false,
    failures: [] as unknown[],
    reportFailure(err: unknown) {
      this.failures.push(err);
    },
  };
  return { db, storage, ledger, ledgerLike, health };
}

/** A query held until `release` is called. */
function holdQueries(db: { hold: Promise<void> | undefined }): () => void {
  let release: () => void = () => {};
  db.hold = new Promise((r) => {
    release = r;
  });
  return () => {
    db.hold = undefined;
    release();
  };
}

/** What the ledger hands the view once a flush of `tokens` into `bucketStart` commits. */
function flushed(keyId: string, bucketStart: number, tokens: number): KeyUsage[] {
  return [
    {
      keyId,
      tokens,
      requests: 1,
      lastUsedAt: bucketStart,
      buckets: [{ bucketStart, tokens, requests: 1 }],
    },
  ];
}

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
});

describe("UsageView background rounds", () => {
  // The timer's own interval is long: these tests run the rounds themselves.
  const OPTIONS = { activeMs: 10_000, fullMs: 1000, staleMs: 100 };
  const setup = () => {
    const f = fakes();
    const time = { now: T0 };
    const view = new UsageView(
      f.storage,
      f.ledgerLike,
      () => time.now,
      60_000,
      f.health as unknown as StorageHealth,
    );
    view.start(OPTIONS);
    return { f, time, view };
  };

  test("one query per round re-reads every recently used key", async () => {
    const { f, time, view } = setup();
    const ids = Array.from({ length: 200 }, (_, i) => `k${i}`);
    for (const id of ids) await view.buckets(id);
    expect(f.db.queries).toBe(200); // first use: each key's own load, awaited
    for (const [i, id] of ids.entries())
      f.db.byKey.set(id, [{ bucketStart: T0, tokens: i, requests: 1 }]);
    time.now += 50;
    await view.refreshActive();
    expect(f.db.many).toHaveLength(1);
    expect(f.db.many[0]?.ids.sort()).toEqual([...ids].sort());
    for (const [i, id] of ids.entries())
      expect(windowUsage(await view.buckets(id), time.now)).toBe(i);
    expect(f.db.queries).toBe(200);
    view.stop();
  });

  test("a request for a loaded key never waits on a round, nor queries itself", async () => {
    const { f, time, view } = setup();
    f.db.rows = [{ bucketStart: T0, tokens: 10, requests: 1 }];
    await view.buckets("k");
    time.now += 50;
    f.db.rows = [{ bucketStart: T0, tokens: 30, requests: 1 }];
    const release = holdQueries(f.db);
    const round = view.refreshActive();
    // Answers from what it has while the round is held.
    expect(windowUsage(await view.buckets("k"), time.now)).toBe(10);
    expect(f.db.queries).toBe(1);
    release();
    await round;
    expect(windowUsage(await view.buckets("k"), time.now)).toBe(30);
    view.stop();
  });

  test("a round that lags: a copy older than staleMs is refreshed by the request, briefly", async () => {
    const { f, time, view } = setup();
    await view.buckets("k");
    time.now += 50;
    const release = holdQueries(f.db);
    const stuck = view.refreshActive();
    f.db.hold = undefined; // only the round is held
    time.now += 200;
    f.db.rows = [{ bucketStart: T0, tokens: 40, requests: 1 }];
    expect(windowUsage(await view.buckets("k"), time.now)).toBe(40);
    expect(f.db.queries).toBe(2);
    // The stuck round's answer, older than the request's, is dropped when it comes.
    release();
    await stuck;
    expect(windowUsage(await view.buckets("k"), time.now)).toBe(40);
    view.stop();
  });

  test("a flush racing a round is never lost, and is counted once as soon as a read includes it", async () => {
    const { f, time, view } = setup();
    await view.buckets("k");
    const usage = async () => windowUsage(await view.buckets("k"), time.now);

    // 1. The flush commits after the round's snapshot: the round lacks it, the view keeps it.
    time.now += 50;
    let release = holdQueries(f.db);
    let round = view.refreshActive();
    f.db.rows = [{ bucketStart: T0, tokens: 50, requests: 1 }];
    f.ledger.flushNo = 1;
    view.onFlushed(flushed("k", T0, 50), 1);
    release();
    await round;
    expect(await usage()).toBe(50);
    time.now += 50;
    await view.refreshActive();
    expect(await usage()).toBe(50);

    // 2. The flush is in the round's snapshot, but its number came after the round began:
    // counted twice (never less) until the next round, then once.
    f.db.rows = [{ bucketStart: T0, tokens: 80, requests: 2 }];
    time.now += 50;
    release = holdQueries(f.db);
    round = view.refreshActive();
    f.ledger.flushNo = 2;
    view.onFlushed(flushed("k", T0, 30), 2);
    release();
    await round;
    expect(await usage()).toBe(110);
    time.now += 50;
    await view.refreshActive();
    expect(await usage()).toBe(80);

    // 3. Committed before the round began: counted once at once.
    f.db.rows = [{ bucketStart: T0, tokens: 100, requests: 3 }];
    f.ledger.flushNo = 3;
    view.onFlushed(flushed("k", T0, 20), 3);
    time.now += 50;
    await view.refreshActive();
    expect(await usage()).toBe(100);
    view.stop();
  });

  test("a read that began before the one applied is dropped (it may lack a flush)", async () => {
    const { f, time, view } = setup();
    await view.buckets("k");
    time.now += 200; // stale: the request loads for itself
    const release = holdQueries(f.db);
    const request = view.buckets("k"); // snapshot: nothing yet, seen flush 0
    f.db.rows = [{ bucketStart: T0, tokens: 60, requests: 1 }];
    f.ledger.flushNo = 1;
    view.onFlushed(flushed("k", T0, 60), 1);
    f.db.hold = undefined;
    await view.refreshActive(); // began later, applied first: flush 1 is in its buckets
    release();
    expect(windowUsage(await request, time.now)).toBe(60);
    expect(windowUsage(await view.buckets("k"), time.now)).toBe(60);
    view.stop();
  });

  test("between full reads a round reads the last two buckets; older flushes wait for a full read", async () => {
    const { f, time, view } = setup();
    const old = T0 - 10 * BUCKET_MS;
    time.now = T0 + 1000;
    f.db.rows = [{ bucketStart: old, tokens: 5, requests: 1 }];
    await view.buckets("k");
    await view.refreshActive(); // full: the first round
    expect(f.db.many[0]?.since).toBe(windowFloor(time.now));
    // A replayed journal's flush lands in an old bucket.
    f.db.rows = [{ bucketStart: old, tokens: 25, requests: 2 }];
    f.ledger.flushNo = 1;
    view.onFlushed(flushed("k", old, 20), 1);
    time.now += 50;
    await view.refreshActive();
    expect(f.db.many[1]?.since).toBe(T0 - BUCKET_MS);
    expect(windowUsage(await view.buckets("k"), time.now)).toBe(25);
    time.now += 1000;
    await view.refreshActive();
    expect(f.db.many[2]?.since).toBe(windowFloor(time.now));
    expect(windowUsage(await view.buckets("k"), time.now)).toBe(25);
    view.stop();
  });

  test("a fresh read (for /stats) still re-reads a copy older than refreshMs", async () => {
    const f = fakes();
    let now = T0;
    const view = new UsageView(f.storage, f.ledgerLike, () => now, 25);
    view.start({ staleMs: 100 });
    await view.buckets("k");
    now += 30;
    await view.buckets("k");
    expect(f.db.queries).toBe(1);
    await view.buckets("k", { fresh: true });
    expect(f.db.queries).toBe(2);
    view.stop();
  });

  test("rounds never overlap", async () => {
    const { f, time, view } = setup();
    await view.buckets("k");
    time.now += 50;
    const release = holdQueries(f.db);
    const a = view.refreshActive();
    const b = view.refreshActive();
    release();
    await Promise.all([a, b]);
    expect(f.db.many).toHaveLength(1);
    view.stop();
  });

  test("while degraded rounds are skipped; a failed round reports and does not throw", async () => {
    const { f, time, view } = setup();
    await view.buckets("k");
    f.health.degraded = true;
    time.now += 50;
    await view.refreshActive();
    expect(f.db.many).toHaveLength(0);
    f.health.degraded = false;
    f.db.fail = new Error("connection lost");
    await view.refreshActive();
    expect(f.db.many).toHaveLength(1);
    expect(f.health.failures).toEqual([f.db.fail]);
    view.stop();
  });

  test("idle keys are left out of rounds and re-read on their next use", async () => {
    const { f, time, view } = setup();
    await view.buckets("idle");
    await view.buckets("busy");
    time.now += OPTIONS.activeMs;
    await view.buckets("busy"); // stale by now: it loads for itself
    await view.refreshActive();
    expect(f.db.many.map((m) => m.ids)).toEqual([["busy"]]);
    expect(f.db.queries).toBe(3);
    await view.buckets("busy");
    expect(f.db.queries).toBe(3);
    await view.buckets("idle");
    expect(f.db.queries).toBe(4);
    view.stop();
  });

  test("the timer runs rounds by itself until stopped", async () => {
    const f = fakes();
    const view = new UsageView(f.storage, f.ledgerLike, Date.now, 10);
    await view.buckets("k");
    view.start();
    await Bun.sleep(60);
    expect(f.db.many.length).toBeGreaterThan(0);
    view.stop();
    const rounds = f.db.many.length;
    await Bun.sleep(40);
    expect(f.db.many.length).toBe(rounds);
  });
});
