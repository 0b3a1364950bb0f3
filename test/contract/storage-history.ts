import { expect, test } from "bun:test";
import { createKey } from "../../src/keys/service.ts";
import type { BucketUsage, KeyTotal, Storage } from "../../src/storage/types.ts";
import { BUCKET_MS } from "../../src/time/buckets.ts";

// Usage history and retention, part of the contract every backend runs
// (called from `storageContract`). Every bucket here lies within 5 hours of
// the newest, because the legacy file keeps no more than the quota window.

const T0 = Date.UTC(2026, 10, 28, 12, 0, 0);
const B = BUCKET_MS;

let seq = 0;

/** Charges buckets to a key the way the ledger does, with the totals they add up to. */
async function charge(s: Storage, keyId: string, buckets: BucketUsage[]): Promise<void> {
  seq++;
  await s.applyUsage({
    instanceId: "history",
    firstSeq: seq,
    lastSeq: seq,
    keys: [
      {
        keyId,
        tokens: buckets.reduce((a, b) => a + b.tokens, 0),
        requests: buckets.reduce((a, b) => a + b.requests, 0),
        lastUsedAt: Math.max(...buckets.map((b) => b.bucketStart)),
        buckets,
      },
    ],
  });
}

const bucket = (n: number, tokens: number, requests = 1): BucketUsage => ({
  bucketStart: T0 + n * B,
  tokens,
  requests,
});

const byId = (rows: KeyTotal[]) => [...rows].sort((a, b) => (a.keyId < b.keyId ? -1 : 1));

/** Two keys with usage: `a` in buckets 0..5, `b` in 1 and 6 (and a third key with none). */
async function twoKeysWithUsage(s: Storage) {
  const a = (await createKey(s, { name: "a", tokenLimit: 1 }, T0)).record;
  const b = (await createKey(s, { name: "b", tokenLimit: 1 }, T0)).record;
  const idle = (await createKey(s, { name: "idle", tokenLimit: 1 }, T0)).record;
  // Out of order on purpose: answers must come back oldest first anyway.
  await charge(s, a.id, [bucket(5, 50, 5), bucket(0, 10, 1), bucket(2, 30, 3)]);
  await charge(s, a.id, [bucket(1, 20, 2), bucket(3, 40, 4), bucket(4, 45, 4)]);
  await charge(s, b.id, [bucket(6, 600, 6), bucket(1, 100, 1)]);
  return { a, b, idle };
}

export function historyContractTests(storage: () => Storage): void {
  test("usageBetween: one key's buckets in [from, to), oldest first", async () => {
    const s = storage();
    const { a, idle } = await twoKeysWithUsage(s);
    expect(await s.usageBetween(a.id, T0 + B, T0 + 4 * B)).toEqual([
      bucket(1, 20, 2),
      bucket(2, 30, 3),
      bucket(3, 40, 4),
    ]);
    // A bucket starting inside the range counts even if `from` is mid-bucket.
    expect(await s.usageBetween(a.id, T0 + 4 * B - 1, T0 + 5 * B)).toEqual([bucket(4, 45, 4)]);
    expect(await s.usageBetween(a.id, T0 + 6 * B, T0 + 12 * B)).toEqual([]);
    expect(await s.usageBetween(idle.id, T0, T0 + 12 * B)).toEqual([]);
    expect(await s.usageBetween("no-such-key", T0, T0 + 12 * B)).toEqual([]);
  });

  test("usageSinceMany: each key's buckets from `since`, oldest first; every id asked has an entry", async () => {
    const s = storage();
    const { a, b, idle } = await twoKeysWithUsage(s);
    const got = await s.usageSinceMany([a.id, b.id, idle.id, "no-such-key"], T0 + 3 * B);
    expect([...got.keys()].sort()).toEqual([a.id, b.id, idle.id, "no-such-key"].sort());
    expect(got.get(a.id)).toEqual([bucket(3, 40, 4), bucket(4, 45, 4), bucket(5, 50, 5)]);
    expect(got.get(b.id)).toEqual([bucket(6, 600, 6)]);
    expect(got.get(idle.id)).toEqual([]);
    expect(got.get("no-such-key")).toEqual([]);
    // The same answer as one usageSince per key.
    for (const id of [a.id, b.id]) expect(got.get(id)).toEqual(await s.usageSince(id, T0 + 3 * B));
    expect((await s.usageSinceMany([], 0)).size).toBe(0);
  });

  test("usageSinceMany: an id list longer than one statement's chunk", async () => {
    const s = storage();
    const { a, b } = await twoKeysWithUsage(s);
    // Both real keys sit in the last chunk, after 1,200 unknown ids.
    const ids = [...Array.from({ length: 1200 }, (_, i) => `missing-${i}`), b.id, a.id];
    const got = await s.usageSinceMany(ids, T0);
    expect(got.size).toBe(ids.length);
    expect(got.get(a.id)).toHaveLength(6);
    expect(got.get(b.id)).toEqual([bucket(1, 100, 1), bucket(6, 600, 6)]);
    expect(got.get("missing-7")).toEqual([]);
  });

  test("usageBetween with no key: every key's buckets summed per start, oldest first", async () => {
    const s = storage();
    await twoKeysWithUsage(s);
    expect(await s.usageBetween(null, T0, T0 + 12 * B)).toEqual([
      bucket(0, 10, 1),
      bucket(1, 120, 3),
      bucket(2, 30, 3),
      bucket(3, 40, 4),
      bucket(4, 45, 4),
      bucket(5, 50, 5),
      bucket(6, 600, 6),
    ]);
    expect(await s.usageBetween(null, T0 + B, T0 + 2 * B)).toEqual([bucket(1, 120, 3)]);
    expect(await s.usageBetween(null, T0 + 7 * B, T0 + 12 * B)).toEqual([]);
  });

  test("usageByKey: sums per key with usage in the range, narrowed by ids", async () => {
    const s = storage();
    const { a, b, idle } = await twoKeysWithUsage(s);
    expect(byId(await s.usageByKey(T0, T0 + 12 * B))).toEqual(
      byId([
        { keyId: a.id, tokens: 195, requests: 19 },
        { keyId: b.id, tokens: 700, requests: 7 },
      ]),
    );
    // [from, to): bucket 6 is excluded, bucket 1 included.
    expect(byId(await s.usageByKey(T0 + B, T0 + 6 * B))).toEqual(
      byId([
        { keyId: a.id, tokens: 185, requests: 18 },
        { keyId: b.id, tokens: 100, requests: 1 },
      ]),
    );
    expect(await s.usageByKey(T0 + 6 * B, T0 + 7 * B, [a.id, idle.id])).toEqual([]);
    expect(await s.usageByKey(T0, T0 + 12 * B, [b.id, idle.id, "no-such-key"])).toEqual([
      { keyId: b.id, tokens: 700, requests: 7 },
    ]);
    expect(await s.usageByKey(T0, T0 + 12 * B, [])).toEqual([]);
  });

  test("pruneUsage deletes old buckets in chunks of at most `limit`, nothing else", async () => {
    const s = storage();
    const { a, b } = await twoKeysWithUsage(s);
    const totals = async () =>
      (await Promise.all([a.id, b.id].map((id) => s.getKeyById(id)))).map((k) => ({
        totalTokens: k?.totalTokens,
        totalRequests: k?.totalRequests,
        lastUsedAt: k?.lastUsedAt,
      }));
    const before = await totals();
    const cutoff = T0 + 3 * B;
    // Older than the cutoff: a's buckets 0, 1, 2 and b's bucket 1.
    const oldBuckets = async () =>
      (await s.usageBetween(a.id, 0, cutoff)).length +
      (await s.usageBetween(b.id, 0, cutoff)).length;
    expect(await oldBuckets()).toBe(4);

    expect(await s.pruneUsage(cutoff, 0)).toBe(0);
    expect(await oldBuckets()).toBe(4);

    expect(await s.pruneUsage(cutoff, 3)).toBe(3);
    // One of the four old buckets is left: the chunk limit held.
    expect(await oldBuckets()).toBe(1);
    expect(await s.pruneUsage(cutoff, 3)).toBe(1);
    expect(await s.pruneUsage(cutoff, 3)).toBe(0);
    expect(await oldBuckets()).toBe(0);
    expect(await s.usageBetween(null, 0, cutoff)).toEqual([]);

    // Newer buckets of both keys are exactly as they were.
    expect(await s.usageBetween(a.id, 0, T0 + 12 * B)).toEqual([
      bucket(3, 40, 4),
      bucket(4, 45, 4),
      bucket(5, 50, 5),
    ]);
    expect(await s.usageBetween(b.id, 0, T0 + 12 * B)).toEqual([bucket(6, 600, 6)]);
    // Lifetime totals and last use do not depend on the history.
    expect(await totals()).toEqual(before);
    expect(before[0]).toEqual({ totalTokens: 195, totalRequests: 19, lastUsedAt: T0 + 5 * B });
  });

  test("pruneUsage with nothing old enough deletes nothing", async () => {
    const s = storage();
    const { a } = await twoKeysWithUsage(s);
    expect(await s.pruneUsage(T0, 1000)).toBe(0);
    expect(await s.usageBetween(a.id, 0, T0 + 12 * B)).toHaveLength(6);
  });
}
