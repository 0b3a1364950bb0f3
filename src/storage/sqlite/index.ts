import { Database } from "bun:sqlite";
import { mkdirSync } from "node:fs";
import { dirname } from "node:path";
import { fileURLToPath } from "node:url";
import { and, asc, count, desc, eq, gt, gte, inArray, lt, or, sql } from "drizzle-orm";
import { type BunSQLiteDatabase, drizzle } from "drizzle-orm/bun-sqlite";
import { migrate } from "drizzle-orm/bun-sqlite/migrator";
import { chunked, ID_CHUNK } from "../chunked.ts";
import { keyListWhere } from "../key-filter.ts";
import {
  type BucketUsage,
  type ImportOptions,
  type ImportResult,
  ImportVerificationError,
  type KeyExport,
  type KeyListQuery,
  type KeyPatch,
  type KeyRecord,
  type KeyTotal,
  type NewKey,
  type Storage,
  type UsageBatch,
} from "../types.ts";
import * as schema from "./schema.ts";

const { apiKeys, usageBuckets, usageCheckpoints } = schema;

// Resolved from this file, not the working directory, so the CLI works from anywhere.
const MIGRATIONS = fileURLToPath(new URL("../../../migrations/sqlite", import.meta.url));

/**
 * SQLite through Drizzle on bun:sqlite. Queries on the request path are
 * prepared once (an unprepared Drizzle query costs ~100 µs). bun:sqlite is
 * synchronous, so every method finishes its work before its promise resolves
 * and transactions never span an await.
 */
export function openSqliteStorage(path: string): Storage {
  if (path !== ":memory:") mkdirSync(dirname(path), { recursive: true });
  const sqlite = new Database(path, { create: true, strict: true });
  // The CLI and a running server may write the same file: wait for each other
  // instead of failing, and let readers run beside the single writer.
  sqlite.run("PRAGMA busy_timeout = 5000");
  sqlite.run("PRAGMA journal_mode = WAL");
  sqlite.run("PRAGMA synchronous = NORMAL");
  sqlite.run("PRAGMA foreign_keys = ON");
  const db = drizzle({ client: sqlite, schema });
  return new SqliteStorage(sqlite, db);
}

type Db = BunSQLiteDatabase<typeof schema>;

class SqliteStorage implements Storage {
  readonly kind = "sqlite" as const;
  private prepared: ReturnType<typeof prepare> | undefined;

  constructor(
    private readonly sqlite: Database,
    private readonly db: Db,
  ) {}

  private get q() {
    this.prepared ??= prepare(this.db, this.sqlite);
    return this.prepared;
  }

  async migrate(): Promise<void> {
    migrate(this.db, { migrationsFolder: MIGRATIONS });
  }

  async ping(): Promise<void> {
    this.sqlite.query("SELECT 1").get();
  }

  async close(): Promise<void> {
    this.sqlite.close();
  }

  async createKey(key: NewKey): Promise<KeyRecord> {
    const row = { ...key, updatedAt: key.createdAt };
    return this.db.insert(apiKeys).values(row).returning().get();
  }

  async getKeyByHash(keyHash: string): Promise<KeyRecord | null> {
    return this.q.keyByHash.get({ keyHash }) ?? null;
  }

  async getKeyById(id: string): Promise<KeyRecord | null> {
    return this.q.keyById.get({ id }) ?? null;
  }

  async findKeys(ref: string): Promise<KeyRecord[]> {
    return this.db
      .select()
      .from(apiKeys)
      .where(or(eq(apiKeys.id, ref), eq(apiKeys.keyPrefix, ref), eq(apiKeys.name, ref)))
      .all();
  }

  async listKeys(query: KeyListQuery): Promise<{ keys: KeyRecord[]; total: number }> {
    const where = keyListWhere(apiKeys, query);
    const keys = this.db
      .select()
      .from(apiKeys)
      .where(where)
      .orderBy(desc(apiKeys.createdAt), asc(apiKeys.id))
      .limit(query.limit)
      .offset(query.offset)
      .all();
    const total = this.db.select({ n: count() }).from(apiKeys).where(where).get()?.n ?? 0;
    return { keys, total };
  }

  async updateKey(id: string, patch: KeyPatch, now: number): Promise<KeyRecord | null> {
    const set = definedOnly(patch);
    return (
      this.db
        .update(apiKeys)
        .set({ ...set, updatedAt: now })
        .where(eq(apiKeys.id, id))
        .returning()
        .get() ?? null
    );
  }

  async rotateKey(
    id: string,
    keyHash: string,
    keyPrefix: string,
    now: number,
  ): Promise<KeyRecord | null> {
    return (
      this.db
        .update(apiKeys)
        .set({ keyHash, keyPrefix, updatedAt: now })
        .where(eq(apiKeys.id, id))
        .returning()
        .get() ?? null
    );
  }

  async deleteKey(id: string): Promise<boolean> {
    const gone = this.db.delete(apiKeys).where(eq(apiKeys.id, id)).returning().all();
    return gone.length > 0;
  }

  async countKeys(): Promise<number> {
    return this.db.select({ n: count() }).from(apiKeys).get()?.n ?? 0;
  }

  async usageSince(keyId: string, since: number): Promise<BucketUsage[]> {
    return this.q.usageSince.all({ keyId, since });
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

  async applyUsage(batch: UsageBatch): Promise<void> {
    const q = this.q;
    // IMMEDIATE takes the write lock up front, so a concurrent CLI write waits
    // on busy_timeout instead of failing half-way.
    this.sqlite
      .transaction(() => {
        // Already applied (a retry after a lost answer): nothing to do.
        const done = q.checkpoint.get({ instanceId: batch.instanceId })?.lastSeq ?? 0;
        if (done >= batch.lastSeq) return;
        for (const k of batch.keys) {
          const hit = q.bumpTotals.get({
            keyId: k.keyId,
            tokens: k.tokens,
            requests: k.requests,
            lastUsedAt: k.lastUsedAt,
          });
          // A key deleted while its usage was pending: nothing left to charge.
          if (!hit) continue;
          for (const b of k.buckets) q.upsertBucket.run({ keyId: k.keyId, ...b });
        }
        q.saveCheckpoint.run({
          instanceId: batch.instanceId,
          lastSeq: batch.lastSeq,
          now: Date.now(),
        });
      })
      .immediate();
  }

  async checkpoint(instanceId: string): Promise<number> {
    return this.q.checkpoint.get({ instanceId })?.lastSeq ?? 0;
  }

  async importKeys(rows: KeyExport[], options: ImportOptions): Promise<ImportResult> {
    const db = this.db;
    return this.sqlite
      .transaction((): ImportResult => {
        const skipped: string[] = [];
        const written: KeyExport[] = [];
        rows.forEach((row, i) => {
          const existing = this.q.keyByHash.get({ keyHash: row.key.keyHash });
          if (existing && options.skipExisting) {
            skipped.push(existing.id);
          } else {
            db.insert(apiKeys).values(row.key).run();
            for (const b of row.buckets)
              db.insert(usageBuckets)
                .values({ keyId: row.key.id, ...b })
                .run();
            written.push(row);
          }
          if ((i + 1) % 500 === 0 || i + 1 === rows.length)
            options.onProgress?.(i + 1, rows.length);
        });
        if (options.verify) {
          const readBack = written.map((w) => ({
            key: this.q.keyById.get({ id: w.key.id }) as KeyRecord,
            buckets: this.q.usageSince.all({ keyId: w.key.id, since: Number.MIN_SAFE_INTEGER }),
          }));
          const problems = options.verify(readBack);
          // Throwing inside the transaction rolls it back.
          if (problems.length > 0) throw new ImportVerificationError(problems);
        }
        return { inserted: written.length, skipped };
      })
      .immediate();
  }

  async listCheckpoints(): Promise<Array<{ instanceId: string; lastSeq: number }>> {
    return this.db
      .select({ instanceId: usageCheckpoints.instanceId, lastSeq: usageCheckpoints.lastSeq })
      .from(usageCheckpoints)
      .all();
  }

  async *exportKeys(batchSize: number): AsyncIterable<KeyExport[]> {
    // Keyset pagination on (created_at, id): stable while others write, and
    // only one batch in memory at a time.
    let after: { createdAt: number; id: string } | null = null;
    for (;;) {
      const keys: KeyRecord[] = this.db
        .select()
        .from(apiKeys)
        .where(
          after
            ? or(
                gt(apiKeys.createdAt, after.createdAt),
                and(eq(apiKeys.createdAt, after.createdAt), gt(apiKeys.id, after.id)),
              )
            : undefined,
        )
        .orderBy(asc(apiKeys.createdAt), asc(apiKeys.id))
        .limit(batchSize)
        .all();
      if (keys.length === 0) return;
      yield keys.map((key) => ({
        key,
        buckets: this.q.usageSince.all({ keyId: key.id, since: Number.MIN_SAFE_INTEGER }),
      }));
      const last = keys[keys.length - 1] as KeyRecord;
      after = { createdAt: last.createdAt, id: last.id };
    }
  }
}

function prepare(db: Db, sqlite: Database) {
  const p = sql.placeholder;
  return {
    usageBetween: db
      .select({
        bucketStart: usageBuckets.bucketStart,
        tokens: usageBuckets.tokens,
        requests: usageBuckets.requests,
      })
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

function definedOnly<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}
