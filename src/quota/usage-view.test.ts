import { describe, expect, test } from "bun:test";
import type { UsageLedger } from "../accounting/ledger.ts";
import type { StorageHealth } from "../storage/health.ts";
import type { BucketUsage, Storage } from "../storage/types.ts";
import { UsageView } from "./usage-view.ts";
import { windowUsage } from "./window.ts";

const T0 = Date.UTC(2026, 10, 28, 12, 0, 0);

/** A database whose answers the test sets, and whose queries it can hold. */
function fakes() {
  const db = {
    rows: [] as BucketUsage[],
    queries: 0,
    hold: undefined as Promise<void> | undefined,
  };
  const storage = {
    usageSince: async () => {
      db.queries++;
      const snapshot = db.rows.map((r) => ({ ...r }));
      if (db.hold) await db.hold;
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
  const health = { degraded: false };
  return { db, storage, ledger, ledgerLike, health };
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
