// Fakes shared by the UsageView tests: a database whose answers the test
// sets and whose queries it can hold, a ledger, and a health monitor.
import type { PendingUsage } from "../../src/quota/usage-view.ts";
import type { BucketUsage, KeyUsage, Storage } from "../../src/storage/types.ts";

export const T0 = Date.UTC(2026, 10, 28, 12, 0, 0);

/** A database whose answers the test sets, and whose queries it can hold. */
export function fakes() {
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
  const ledgerLike: PendingUsage = {
    get flushNo() {
      return ledger.flushNo;
    },
    pendingBuckets: () => ledger.pending,
  };
  const recovered: Array<() => void> = [];
  const health = {
    degraded: false,
    failures: [] as unknown[],
    reportFailure(err: unknown) {
      this.failures.push(err);
    },
    onRecovered(fn: () => void) {
      recovered.push(fn);
    },
    /** Degraded, then reachable again, as the monitor would report it. */
    recover() {
      this.degraded = false;
      for (const fn of recovered) fn();
    },
  };
  return { db, storage, ledger, ledgerLike, health };
}

/** A query held until `release` is called. */
export function holdQueries(db: { hold: Promise<void> | undefined }): () => void {
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
export function flushed(keyId: string, bucketStart: number, tokens: number): KeyUsage[] {
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
