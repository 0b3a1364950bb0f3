import { describe, expect, test } from "bun:test";
import { fakes, flushed, holdQueries, T0 } from "../../test/fakes/usage-view.ts";
import type { StorageHealth } from "../storage/health.ts";
import { BUCKET_MS, windowFloor, windowUsage } from "../time/buckets.ts";
import { UsageView } from "./usage-view.ts";

// The background rounds: one query re-reads every recently used key, merged
// with this instance's flushes, never overlapping, never stuck on a hung query.

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

  test("rounds every 50 ms for 2 s read the whole window about once a second", async () => {
    const { f, time, view } = setup();
    await view.buckets("k");
    for (let t = 0; t < 2000; t += 50) {
      time.now += 50;
      await view.buckets("k");
      await view.refreshActive();
    }
    // A partial round reads from the previous bucket on; a full one from the window's floor.
    const full = f.db.many.filter((m) => m.since < T0 - BUCKET_MS).length;
    expect(f.db.many).toHaveLength(40);
    expect(full).toBeGreaterThanOrEqual(2);
    expect(full).toBeLessThanOrEqual(3);
    view.stop();
  });

  test("a round held across a 5-minute boundary merges what it read, from where it read", async () => {
    const { f, time, view } = setup();
    const prev = T0 - BUCKET_MS;
    time.now = T0 + BUCKET_MS - 100;
    f.db.rows = [
      { bucketStart: prev, tokens: 5, requests: 1 },
      { bucketStart: T0, tokens: 10, requests: 1 },
    ];
    await view.buckets("k");
    await view.refreshActive(); // full
    time.now += 50;
    f.db.rows = [
      { bucketStart: prev, tokens: 5, requests: 1 },
      { bucketStart: T0, tokens: 30, requests: 2 },
    ];
    const release = holdQueries(f.db);
    const round = view.refreshActive(); // partial: from `prev` on
    time.now += 60; // into the next bucket while it is held (the copy stays within staleMs)
    release();
    await round;
    expect(f.db.many[1]?.since).toBe(prev);
    expect(windowUsage(await view.buckets("k"), time.now)).toBe(35);
    view.stop();
  });

  test("a round that never answers is given up on: later rounds run, its failure is not reported", async () => {
    const { f, time, view } = setup();
    view.start({ ...OPTIONS, timeoutMs: 20 });
    await view.buckets("k");
    time.now += 50;
    const release = holdQueries(f.db);
    const hung = view.refreshActive();
    await hung; // resolves at the timeout although the query has not answered
    expect(f.db.many).toHaveLength(1);
    // The next round is not joined to the hung one.
    f.db.hold = undefined;
    f.db.rows = [{ bucketStart: T0, tokens: 40, requests: 1 }];
    time.now += 50;
    await view.refreshActive();
    expect(f.db.many).toHaveLength(2);
    expect(windowUsage(await view.buckets("k"), time.now)).toBe(40);
    // It finally fails, after the database has recovered: not a new outage.
    f.db.fail = new Error("socket closed");
    release();
    await Bun.sleep(1);
    expect(f.health.failures).toEqual([]);
    expect(f.health.degraded).toBe(false);
    view.stop();
  });

  test("a round that began before the database's recovery does not report its failure", async () => {
    const { f, time, view } = setup();
    await view.buckets("k");
    time.now += 50;
    const release = holdQueries(f.db);
    const round = view.refreshActive();
    // Meanwhile something else marks the database out, and it recovers.
    f.health.degraded = true;
    f.health.recover();
    f.db.fail = new Error("connection reset");
    release();
    await round;
    expect(f.health.failures).toEqual([]);
    // A round begun after the recovery reports as before.
    time.now += 50;
    await view.refreshActive();
    expect(f.health.failures).toEqual([f.db.fail]);
    view.stop();
  });
});
