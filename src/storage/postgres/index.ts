import { and, asc, count, desc, eq, isNull, or, sql } from "drizzle-orm";
import { drizzle } from "drizzle-orm/postgres-js";
import { migrate } from "drizzle-orm/postgres-js/migrator";
import postgres from "postgres";
import { packagePath } from "../../package-root.ts";
import { chunked, ID_CHUNK } from "../chunked.ts";
import { keyListWhere } from "../key-filter.ts";
import {
  type AuditEntry,
  type AuditQuery,
  type BucketUsage,
  type ImportOptions,
  type ImportResult,
  type KeyExport,
  type KeyListQuery,
  type KeyPatch,
  type KeyRecord,
  type KeyTotal,
  type ModelTotal,
  type ModelUsage,
  type NewAuditEntry,
  type NewKey,
  revokedHash,
  type Storage,
  type UsageBatch,
} from "../types.ts";
import * as audit from "./audit.ts";
import { exportKeys, importKeys } from "./bulk.ts";
import type { Db, Sql } from "./database.ts";
import { readRetryingStale } from "./error-codes.ts";
import * as history from "./history.ts";
import {
  exportModelUsage,
  importModelUsage,
  modelUsage,
  pruneModelUsage,
  upsertModelUsage,
} from "./model-usage.ts";
import * as schema from "./schema.ts";

const { apiKeys, auditLog, usageCheckpoints } = schema;

const MIGRATIONS = packagePath("migrations", "pg");

/** Channel on which key changes are announced to every instance. */
export const KEY_CHANNEL = "tollgate_key_changed";

/** Serialises schema migrations of several instances starting at once. */
const MIGRATION_LOCK = 7_261_001;

export interface PostgresOptions {
  url: string;
  /** Connections in the pool. */
  poolMax: number;
}

/**
 * PostgreSQL through Drizzle on postgres.js. Several gateway instances share
 * one database: key changes are announced with NOTIFY on the same
 * transaction, and usage batches lock their key rows in a fixed order so
 * concurrent flushes from several instances never deadlock.
 */
export function openPostgresStorage(options: PostgresOptions): Storage {
  const client = postgres(options.url, {
    max: options.poolMax,
    onnotice: () => {},
    // Fail fast when the server is gone, so the gateway turns to its memory
    // and journal instead of holding requests for the 30 s default.
    connect_timeout: 5,
    // The driver's own wait before a pooled connection reconnects grows with
    // every failed attempt of the whole pool, up to 20 s: after an outage the
    // pool could stay unusable for seconds once the database is back, while
    // the health probe already said it was. The gateway backs off on its own
    // (health probe, flush retries); the driver only waits a moment.
    backoff: reconnectWaitSeconds,
    connection: { application_name: "tollgate" },
  });
  return new PostgresStorage(options, client, drizzle({ client, schema }));
}

/** A pooled connection's wait before it reconnects: 25 ms, doubling, at most 250 ms. */
function reconnectWaitSeconds(failures: number): number {
  return Math.min(0.25, 0.025 * 2 ** Math.max(0, failures - 1));
}

const keyColumns = {
  id: apiKeys.id,
  keyHash: apiKeys.keyHash,
  keyPrefix: apiKeys.keyPrefix,
  name: apiKeys.name,
  tokenLimit: apiKeys.tokenLimit,
  model: apiKeys.model,
  expiresAt: apiKeys.expiresAt,
  maxConcurrent: apiKeys.maxConcurrent,
  weeklyLimit: apiKeys.weeklyLimit,
  allowedModels: apiKeys.allowedModels,
  disabled: apiKeys.disabled,
  createdAt: apiKeys.createdAt,
  updatedAt: apiKeys.updatedAt,
  lastUsedAt: apiKeys.lastUsedAt,
  totalTokens: apiKeys.totalTokens,
  totalRequests: apiKeys.totalRequests,
  revokedAt: apiKeys.revokedAt,
};

class PostgresStorage implements Storage {
  readonly kind = "postgres" as const;

  constructor(
    private readonly options: PostgresOptions,
    private readonly client: Sql,
    private readonly db: Db,
  ) {}

  async migrate(): Promise<void> {
    // A dedicated single connection, holding an advisory lock so that
    // instances starting together do not race through the same migration.
    const one = postgres(this.options.url, { max: 1, onnotice: () => {} });
    try {
      await one`select pg_advisory_lock(${MIGRATION_LOCK})`;
      await migrate(drizzle({ client: one }), { migrationsFolder: MIGRATIONS });
      await one`select pg_advisory_unlock(${MIGRATION_LOCK})`;
    } finally {
      await one.end({ timeout: 5 });
    }
  }

  async ping(): Promise<void> {
    await this.read(() => this.client`select 1`);
  }

  /** A read, tried again on another connection when its own had been closed. */
  private read<T>(run: () => Promise<T>): Promise<T> {
    return readRetryingStale(run, this.options.poolMax);
  }

  async close(): Promise<void> {
    await this.client.end({ timeout: 5 });
  }

  async createKey(key: NewKey): Promise<KeyRecord> {
    const [row] = await this.db
      .insert(apiKeys)
      .values({ ...key, updatedAt: key.createdAt })
      .returning();
    if (!row) throw new Error("insert returned no row");
    return row;
  }

  async getKeyByHash(keyHash: string): Promise<KeyRecord | null> {
    const [row] = await this.read(() =>
      this.db.select().from(apiKeys).where(eq(apiKeys.keyHash, keyHash)).limit(1),
    );
    return row ?? null;
  }

  async getKeysByHash(keyHashes: readonly string[]): Promise<KeyRecord[]> {
    const out: KeyRecord[] = [];
    // One chunk after another, so a round over thousands of keys holds one
    // pooled connection at a time; `= any($1)` keeps one statement text.
    for (const hashes of chunked(keyHashes, ID_CHUNK)) {
      const rows = await this.read(() =>
        this.db
          .select()
          .from(apiKeys)
          .where(sql`${apiKeys.keyHash} = any(${sql.param(hashes)})`),
      );
      out.push(...rows);
    }
    return out;
  }

  async getKeyById(id: string): Promise<KeyRecord | null> {
    const [row] = await this.read(() =>
      this.db.select().from(apiKeys).where(eq(apiKeys.id, id)).limit(1),
    );
    return row ?? null;
  }

  async findKeys(ref: string): Promise<KeyRecord[]> {
    return this.db
      .select()
      .from(apiKeys)
      .where(or(eq(apiKeys.id, ref), eq(apiKeys.keyPrefix, ref), eq(apiKeys.name, ref)));
  }

  async listKeys(query: KeyListQuery): Promise<{ keys: KeyRecord[]; total: number }> {
    const where = keyListWhere(apiKeys, query);
    const keys = await this.db
      .select()
      .from(apiKeys)
      .where(where)
      .orderBy(desc(apiKeys.createdAt), asc(apiKeys.id))
      .limit(query.limit)
      .offset(query.offset);
    const [row] = await this.db.select({ n: count() }).from(apiKeys).where(where);
    return { keys, total: row?.n ?? 0 };
  }

  /** Changes a key and announces it in the same transaction, so no instance serves the old version for long. */
  private async changeKey(
    id: string,
    set: Partial<typeof apiKeys.$inferInsert>,
  ): Promise<KeyRecord | null> {
    return this.db.transaction(async (tx) => {
      const [row] = await tx
        .update(apiKeys)
        .set(set)
        .where(eq(apiKeys.id, id))
        .returning(keyColumns);
      if (row) await tx.execute(sql`select pg_notify(${KEY_CHANNEL}, ${id})`);
      return row ?? null;
    });
  }

  async updateKey(id: string, patch: KeyPatch, now: number): Promise<KeyRecord | null> {
    const set = Object.fromEntries(Object.entries(patch).filter(([, v]) => v !== undefined));
    return this.changeKey(id, { ...set, updatedAt: now });
  }

  async rotateKey(
    id: string,
    keyHash: string,
    keyPrefix: string,
    now: number,
  ): Promise<KeyRecord | null> {
    return this.changeKey(id, { keyHash, keyPrefix, updatedAt: now });
  }

  /** Announced like any change, so every instance drops the key from its cache at once. */
  async revokeKey(id: string, now: number): Promise<KeyRecord | null> {
    return this.db.transaction(async (tx) => {
      const [row] = await tx
        .update(apiKeys)
        .set({ keyHash: revokedHash(id), revokedAt: now, updatedAt: now })
        .where(and(eq(apiKeys.id, id), isNull(apiKeys.revokedAt)))
        .returning(keyColumns);
      if (row) {
        await tx.execute(sql`select pg_notify(${KEY_CHANNEL}, ${id})`);
        return row;
      }
      const [existing] = await tx.select().from(apiKeys).where(eq(apiKeys.id, id)).limit(1);
      return existing ?? null;
    });
  }

  async deleteKey(id: string): Promise<boolean> {
    return this.db.transaction(async (tx) => {
      const gone = await tx.delete(apiKeys).where(eq(apiKeys.id, id)).returning({ id: apiKeys.id });
      if (gone.length > 0) {
        await tx
          .update(auditLog)
          .set({ keyName: null, changes: sql`(${auditLog.changes}::jsonb - 'name')::text` })
          .where(eq(auditLog.keyId, id));
        await tx.execute(sql`select pg_notify(${KEY_CHANNEL}, ${id})`);
      }
      return gone.length > 0;
    });
  }

  async countKeys(): Promise<number> {
    const [row] = await this.db.select({ n: count() }).from(apiKeys);
    return row?.n ?? 0;
  }

  async usageSince(keyId: string, since: number): Promise<BucketUsage[]> {
    return this.read(() => history.usageSince(this.db, keyId, since));
  }

  async usageSinceMany(keyIds: string[], since: number): Promise<Map<string, BucketUsage[]>> {
    return this.read(() => history.usageSinceMany(this.client, keyIds, since));
  }

  async usageBetween(keyId: string | null, from: number, to: number): Promise<BucketUsage[]> {
    return this.read(() => history.usageBetween(this.db, keyId, from, to));
  }

  async usageByKey(from: number, to: number, keyIds?: string[]): Promise<KeyTotal[]> {
    return this.read(() => history.usageByKey(this.db, from, to, keyIds));
  }

  async pruneUsage(before: number, limit: number): Promise<number> {
    return history.pruneUsage(this.client, before, limit);
  }

  async modelUsage(from: number, to: number, keyId?: string): Promise<ModelTotal[]> {
    return this.read(() => modelUsage(this.client, from, to, keyId));
  }

  async pruneModelUsage(before: number, limit: number): Promise<number> {
    return pruneModelUsage(this.client, before, limit);
  }

  exportModelUsage(batchSize: number): AsyncIterable<ModelUsage[]> {
    return exportModelUsage(this.client, batchSize);
  }

  async importModelUsage(rows: ModelUsage[]): Promise<void> {
    await importModelUsage(this.client, rows);
  }

  async applyUsage(batch: UsageBatch): Promise<void> {
    const keys = [...batch.keys].sort((a, b) =>
      a.keyId < b.keyId ? -1 : a.keyId > b.keyId ? 1 : 0,
    );
    const buckets = keys.flatMap((k) =>
      [...k.buckets]
        .sort((a, b) => a.bucketStart - b.bucketStart)
        .map((b) => ({ keyId: k.keyId, ...b })),
    );
    await this.client.begin(async (tx) => {
      // The instance's checkpoint row, locked: a batch retried after a lost
      // answer (its first write may have committed) waits here for that
      // write, then sees it and does nothing.
      await tx`
        insert into usage_checkpoints (instance_id, last_seq, updated_at)
        values (${batch.instanceId}, 0, ${Date.now()})
        on conflict (instance_id) do nothing`;
      const [cp] = await tx<{ last_seq: string | number }[]>`
        select last_seq from usage_checkpoints where instance_id = ${batch.instanceId} for update`;
      if (Number(cp?.last_seq ?? 0) >= batch.lastSeq) return;
      if (keys.length > 0) {
        // Lock the key rows in id order first: an UPDATE … FROM takes its
        // locks in whatever order the plan visits rows, which can deadlock
        // against another instance's flush. The locks also keep a concurrent
        // delete of a key from slipping between the totals and the buckets.
        await tx`
          select 1 from api_keys
          where id = any(${tx.array(keys.map((k) => k.keyId))}::text[])
          order by id
          for update`;
        const hit = await tx<{ id: string }[]>`
          update api_keys as k set
            total_tokens = k.total_tokens + v.tokens,
            total_requests = k.total_requests + v.requests,
            last_used_at = greatest(coalesce(k.last_used_at, 0), v.last_used_at)
          from unnest(
            ${tx.array(keys.map((k) => k.keyId))}::text[],
            ${tx.array(keys.map((k) => k.tokens))}::int8[],
            ${tx.array(keys.map((k) => k.requests))}::int8[],
            ${tx.array(keys.map((k) => k.lastUsedAt))}::int8[]
          ) as v(id, tokens, requests, last_used_at)
          where k.id = v.id
          returning k.id`;
        // A key deleted while its usage was pending: nothing left to charge.
        const live = new Set(hit.map((r) => r.id));
        await upsertModelUsage(
          tx,
          (batch.models ?? []).filter((m) => live.has(m.keyId)),
        );
        const rows = buckets.filter((b) => live.has(b.keyId));
        if (rows.length > 0) {
          await tx`
            insert into usage_buckets (key_id, bucket_start, tokens, requests)
            select * from unnest(
              ${tx.array(rows.map((b) => b.keyId))}::text[],
              ${tx.array(rows.map((b) => b.bucketStart))}::int8[],
              ${tx.array(rows.map((b) => b.tokens))}::int8[],
              ${tx.array(rows.map((b) => b.requests))}::int8[]
            )
            on conflict (key_id, bucket_start) do update set
              tokens = usage_buckets.tokens + excluded.tokens,
              requests = usage_buckets.requests + excluded.requests`;
        }
      }
      await tx`
        insert into usage_checkpoints (instance_id, last_seq, updated_at)
        values (${batch.instanceId}, ${batch.lastSeq}, ${Date.now()})
        on conflict (instance_id) do update set
          last_seq = greatest(usage_checkpoints.last_seq, excluded.last_seq),
          updated_at = excluded.updated_at`;
    });
  }

  async watchKeyChanges(onChange: (keyId: string) => void): Promise<() => Promise<void>> {
    // postgres.js keeps LISTEN on a connection of its own and re-subscribes
    // after a reconnect; the key cache's TTL covers notifications lost meanwhile.
    const sub = await this.client.listen(KEY_CHANNEL, (id) => onChange(id));
    return () => sub.unlisten();
  }

  async appendAudit(entry: NewAuditEntry): Promise<void> {
    await audit.appendAudit(this.db, entry);
  }

  async listAudit(query: AuditQuery): Promise<{ entries: AuditEntry[]; total: number }> {
    return audit.listAudit(this.db, query);
  }

  async pruneAudit(before: number, limit: number): Promise<number> {
    return audit.pruneAudit(this.client, before, limit);
  }

  exportAudit(batchSize: number): AsyncIterable<AuditEntry[]> {
    return audit.exportAudit(this.db, batchSize);
  }

  async importAudit(entries: AuditEntry[]): Promise<void> {
    await audit.importAudit(this.db, entries);
  }

  async importKeys(rows: KeyExport[], options: ImportOptions): Promise<ImportResult> {
    return importKeys(this.db, rows, options);
  }

  async listCheckpoints(): Promise<Array<{ instanceId: string; lastSeq: number }>> {
    return this.db
      .select({ instanceId: usageCheckpoints.instanceId, lastSeq: usageCheckpoints.lastSeq })
      .from(usageCheckpoints);
  }

  exportKeys(batchSize: number): AsyncIterable<KeyExport[]> {
    return exportKeys(this.db, batchSize);
  }

  async checkpoint(instanceId: string): Promise<number> {
    const [row] = await this.client<{ last_seq: number }[]>`
      select last_seq from usage_checkpoints where instance_id = ${instanceId}`;
    return row ? Number(row.last_seq) : 0;
  }
}
