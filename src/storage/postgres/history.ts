import { and, asc, eq, gte, inArray, lt, type SQL, sql } from "drizzle-orm";
import { chunked, ID_CHUNK } from "../chunked.ts";
import type { BucketUsage, KeyTotal } from "../types.ts";
import type { Db, Sql } from "./database.ts";
import { usageBuckets } from "./schema.ts";

// Usage history in PostgreSQL: buckets over a range (one key, or summed over
// all keys), totals per key, and pruning past the retention.

const bucketColumns = {
  bucketStart: usageBuckets.bucketStart,
  tokens: usageBuckets.tokens,
  requests: usageBuckets.requests,
};

/** One key's buckets whose start matches `when`, oldest first. */
function keyBuckets(db: Db, keyId: string, when: SQL | undefined): Promise<BucketUsage[]> {
  return db
    .select(bucketColumns)
    .from(usageBuckets)
    .where(and(eq(usageBuckets.keyId, keyId), when))
    .orderBy(asc(usageBuckets.bucketStart));
}

/** One key's buckets from `since` on, oldest first. */
export async function usageSince(db: Db, keyId: string, since: number): Promise<BucketUsage[]> {
  return keyBuckets(db, keyId, gte(usageBuckets.bucketStart, since));
}

/**
 * Several keys' buckets from `since` on, oldest first per key. `= any($1)`
 * keeps one statement text (and plan) whatever the number of ids.
 */
export async function usageSinceMany(
  client: Sql,
  keyIds: string[],
  since: number,
): Promise<Map<string, BucketUsage[]>> {
  const out = new Map<string, BucketUsage[]>(keyIds.map((id) => [id, []]));
  type Row = { key_id: string; bucket_start: string; tokens: string; requests: string };
  // One chunk after another: a background round with thousands of keys then
  // holds one pooled connection at a time, leaving the rest to flushes and
  // key lookups.
  for (const ids of chunked([...out.keys()], ID_CHUNK)) {
    const rows = await client<Row[]>`
      select key_id, bucket_start, tokens, requests from usage_buckets
      where key_id = any(${ids}) and bucket_start >= ${since}
      order by key_id, bucket_start`;
    // int8 comes back from postgres.js as a string.
    for (const r of rows)
      out.get(r.key_id)?.push({
        bucketStart: Number(r.bucket_start),
        tokens: Number(r.tokens),
        requests: Number(r.requests),
      });
  }
  return out;
}

export async function usageBetween(
  db: Db,
  keyId: string | null,
  from: number,
  to: number,
): Promise<BucketUsage[]> {
  const inRange = and(gte(usageBuckets.bucketStart, from), lt(usageBuckets.bucketStart, to));
  if (keyId !== null) return keyBuckets(db, keyId, inRange);
  // sum(int8) is numeric, which postgres.js hands over as a string.
  return db
    .select({
      bucketStart: usageBuckets.bucketStart,
      tokens: sql<number>`sum(${usageBuckets.tokens})`.mapWith(Number),
      requests: sql<number>`sum(${usageBuckets.requests})`.mapWith(Number),
    })
    .from(usageBuckets)
    .where(inRange)
    .groupBy(usageBuckets.bucketStart)
    .orderBy(asc(usageBuckets.bucketStart));
}

export async function usageByKey(
  db: Db,
  from: number,
  to: number,
  keyIds?: string[],
): Promise<KeyTotal[]> {
  const select = (ids?: string[]) =>
    db
      .select({
        keyId: usageBuckets.keyId,
        tokens: sql<number>`sum(${usageBuckets.tokens})`.mapWith(Number),
        requests: sql<number>`sum(${usageBuckets.requests})`.mapWith(Number),
      })
      .from(usageBuckets)
      .where(
        and(
          gte(usageBuckets.bucketStart, from),
          lt(usageBuckets.bucketStart, to),
          ids ? inArray(usageBuckets.keyId, ids) : undefined,
        ),
      )
      .groupBy(usageBuckets.keyId);
  if (keyIds === undefined) return select();
  // Each key falls in one chunk, so the chunks' answers never overlap.
  const parts = await Promise.all(chunked(keyIds, ID_CHUNK).map((ids) => select(ids)));
  return parts.flat();
}

export async function pruneUsage(client: Sql, before: number, limit: number): Promise<number> {
  if (limit <= 0) return 0;
  // One chunk of the oldest buckets, found on the bucket_start index and
  // deleted by their physical address (a TID scan): deleting by primary key
  // instead lets the planner hash-join against a scan of the whole table.
  // A bucket a flush updates meanwhile has a new address, so the delete
  // skips it and leaves it to the next run.
  const gone = await client`
    delete from usage_buckets
    where ctid = any(array(
      select ctid from usage_buckets
      where bucket_start < ${before}
      order by bucket_start
      limit ${limit}))`;
  return gone.count;
}
