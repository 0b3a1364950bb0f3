import type { Database } from "bun:sqlite";
import { and, asc, eq, gte, inArray, lt, sql } from "drizzle-orm";
import { chunked, ID_CHUNK } from "../chunked.ts";
import type { BucketUsage, KeyTotal } from "../types.ts";
import { usageBuckets } from "./schema.ts";
import type { Db } from "./statements.ts";

// Usage history in SQLite: buckets over a range (one key, or summed over all
// keys), totals per key, and pruning past the retention. Statements are
// prepared on first use, after the schema is migrated.

const bucketColumns = {
  bucketStart: usageBuckets.bucketStart,
  tokens: usageBuckets.tokens,
  requests: usageBuckets.requests,
};

function prepare(db: Db, sqlite: Database) {
  const p = sql.placeholder;
  return {
    usageBetween: db
      .select(bucketColumns)
      .from(usageBuckets)
      .where(
        and(
          eq(usageBuckets.keyId, p("keyId")),
          gte(usageBuckets.bucketStart, p("from")),
          lt(usageBuckets.bucketStart, p("to")),
        ),
      )
      .orderBy(asc(usageBuckets.bucketStart))
      .prepare(),
    // One chunk of the oldest buckets, found on the bucket_start index; the
    // table has rowids (its primary key is not WITHOUT ROWID), so the delete
    // goes straight to the rows found.
    pruneUsage: sqlite.query<never, { before: number; limit: number }>(
      `delete from usage_buckets where rowid in (
         select rowid from usage_buckets where bucket_start < $before
         order by bucket_start limit $limit)`,
    ),
  };
}

export class SqliteUsageHistory {
  private prepared: ReturnType<typeof prepare> | undefined;

  constructor(
    private readonly sqlite: Database,
    private readonly db: Db,
  ) {}

  private get q() {
    this.prepared ??= prepare(this.db, this.sqlite);
    return this.prepared;
  }

  async usageBetween(keyId: string | null, from: number, to: number): Promise<BucketUsage[]> {
    if (keyId !== null) return this.q.usageBetween.all({ keyId, from, to });
    return this.db
      .select({
        bucketStart: usageBuckets.bucketStart,
        tokens: sql<number>`sum(${usageBuckets.tokens})`.mapWith(Number),
        requests: sql<number>`sum(${usageBuckets.requests})`.mapWith(Number),
      })
      .from(usageBuckets)
      .where(and(gte(usageBuckets.bucketStart, from), lt(usageBuckets.bucketStart, to)))
      .groupBy(usageBuckets.bucketStart)
      .orderBy(asc(usageBuckets.bucketStart))
      .all();
  }

  async usageSinceMany(keyIds: string[], since: number): Promise<Map<string, BucketUsage[]>> {
    const out = new Map<string, BucketUsage[]>(keyIds.map((id) => [id, []]));
    for (const ids of chunked([...out.keys()], ID_CHUNK)) {
      const rows = this.db
        .select({ keyId: usageBuckets.keyId, ...bucketColumns })
        .from(usageBuckets)
        .where(and(inArray(usageBuckets.keyId, ids), gte(usageBuckets.bucketStart, since)))
        .orderBy(asc(usageBuckets.keyId), asc(usageBuckets.bucketStart))
        .all();
      for (const { keyId, ...b } of rows) out.get(keyId)?.push(b);
    }
    return out;
  }

  async usageByKey(from: number, to: number, keyIds?: string[]): Promise<KeyTotal[]> {
    const select = (ids?: string[]) =>
      this.db
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
        .groupBy(usageBuckets.keyId)
        .all();
    if (keyIds === undefined) return select();
    // Each key falls in one chunk, so the chunks' answers never overlap.
    return chunked(keyIds, ID_CHUNK).flatMap((ids) => select(ids));
  }

  async pruneUsage(before: number, limit: number): Promise<number> {
    // LIMIT -1 would mean no limit at all in SQLite.
    if (limit <= 0) return 0;
    return this.q.pruneUsage.run({ before, limit }).changes;
  }
}
