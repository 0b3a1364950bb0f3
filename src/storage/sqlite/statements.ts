import { and, asc, eq, gte, sql } from "drizzle-orm";
import type { BunSQLiteDatabase } from "drizzle-orm/bun-sqlite";
import * as schema from "./schema.ts";

const { apiKeys, usageBuckets, usageCheckpoints } = schema;

export type Db = BunSQLiteDatabase<typeof schema>;

// The statements on the request and flush paths, prepared once: an
// unprepared Drizzle query costs about 100 µs on bun:sqlite.

export type Statements = ReturnType<typeof prepareStatements>;

export function prepareStatements(db: Db) {
  const p = sql.placeholder;
  return {
    keyByHash: db
      .select()
      .from(apiKeys)
      .where(eq(apiKeys.keyHash, p("keyHash")))
      .prepare(),
    keyById: db
      .select()
      .from(apiKeys)
      .where(eq(apiKeys.id, p("id")))
      .prepare(),
    usageSince: db
      .select({
        bucketStart: usageBuckets.bucketStart,
        tokens: usageBuckets.tokens,
        requests: usageBuckets.requests,
      })
      .from(usageBuckets)
      .where(and(eq(usageBuckets.keyId, p("keyId")), gte(usageBuckets.bucketStart, p("since"))))
      .orderBy(asc(usageBuckets.bucketStart))
      .prepare(),
    bumpTotals: db
      .update(apiKeys)
      .set({
        totalTokens: sql`${apiKeys.totalTokens} + ${p("tokens")}`,
        totalRequests: sql`${apiKeys.totalRequests} + ${p("requests")}`,
        lastUsedAt: sql`max(coalesce(${apiKeys.lastUsedAt}, 0), ${p("lastUsedAt")})`,
      })
      .where(eq(apiKeys.id, p("keyId")))
      .returning({ id: apiKeys.id })
      .prepare(),
    upsertBucket: db
      .insert(usageBuckets)
      .values({
        keyId: p("keyId"),
        bucketStart: p("bucketStart"),
        tokens: p("tokens"),
        requests: p("requests"),
      })
      .onConflictDoUpdate({
        target: [usageBuckets.keyId, usageBuckets.bucketStart],
        set: {
          tokens: sql`${usageBuckets.tokens} + excluded.tokens`,
          requests: sql`${usageBuckets.requests} + excluded.requests`,
        },
      })
      .prepare(),
    saveCheckpoint: db
      .insert(usageCheckpoints)
      .values({ instanceId: p("instanceId"), lastSeq: p("lastSeq"), updatedAt: p("now") })
      .onConflictDoUpdate({
        target: usageCheckpoints.instanceId,
        set: {
          lastSeq: sql`max(${usageCheckpoints.lastSeq}, excluded.last_seq)`,
          updatedAt: sql`excluded.updated_at`,
        },
      })
      .prepare(),
    checkpoint: db
      .select({ lastSeq: usageCheckpoints.lastSeq })
      .from(usageCheckpoints)
      .where(eq(usageCheckpoints.instanceId, p("instanceId")))
      .prepare(),
  };
}
