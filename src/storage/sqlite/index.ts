import { Database } from "bun:sqlite";
import { dirname } from "node:path";
import { asc, count, desc, eq, inArray, or, sql } from "drizzle-orm";
import { drizzle } from "drizzle-orm/bun-sqlite";
import { migrate } from "drizzle-orm/bun-sqlite/migrator";
import { packagePath } from "../../package-root.ts";
import { makePrivateDir, touchPrivate } from "../../util/private-files.ts";
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
import { SqliteUsageHistory } from "./history.ts";
import { SqliteModelUsage } from "./model-usage.ts";
import * as schema from "./schema.ts";
import { type Db, prepareStatements, type Statements } from "./statements.ts";

const { apiKeys, auditLog, usageCheckpoints } = schema;

// Resolved from the package, not the working directory, so the CLI works from anywhere.
const MIGRATIONS = packagePath("migrations", "sqlite");

/**
 * SQLite through Drizzle on bun:sqlite. Queries on the request path are
 * prepared once (an unprepared Drizzle query costs ~100 µs). bun:sqlite is
 * synchronous, so every method finishes its work before its promise resolves
 * and transactions never span an await.
 */
export function openSqliteStorage(path: string): Storage {
  if (path !== ":memory:") {
    makePrivateDir(dirname(path));
    touchPrivate(path);
  }
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

class SqliteStorage implements Storage {
  readonly kind = "sqlite" as const;
  private prepared: Statements | undefined;
  private readonly history: SqliteUsageHistory;
  private readonly models: SqliteModelUsage;

  constructor(
    private readonly sqlite: Database,
    private readonly db: Db,
  ) {
    this.history = new SqliteUsageHistory(sqlite, db);
    this.models = new SqliteModelUsage(sqlite);
  }

  private get q() {
    this.prepared ??= prepareStatements(this.db);
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

  async getKeysByHash(keyHashes: readonly string[]): Promise<KeyRecord[]> {
    return chunked(keyHashes, ID_CHUNK).flatMap((hashes) =>
      this.db.select().from(apiKeys).where(inArray(apiKeys.keyHash, hashes)).all(),
    );
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

  async revokeKey(id: string, now: number): Promise<KeyRecord | null> {
    return this.sqlite
      .transaction(() => {
        const k = this.q.keyById.get({ id });
        if (!k || k.revokedAt !== null) return k ?? null;
        return (
          this.db
            .update(apiKeys)
            .set({ keyHash: revokedHash(id), revokedAt: now, updatedAt: now })
            .where(eq(apiKeys.id, id))
            .returning()
            .get() ?? null
        );
      })
      .immediate();
  }

  async deleteKey(id: string): Promise<boolean> {
    return this.sqlite
      .transaction(() => {
        const gone = this.db.delete(apiKeys).where(eq(apiKeys.id, id)).returning().all();
        if (gone.length > 0)
          this.db
            .update(auditLog)
            .set({ keyName: null, changes: sql`json_remove(${auditLog.changes}, '$.name')` })
            .where(eq(auditLog.keyId, id))
            .run();
        return gone.length > 0;
      })
      .immediate();
  }

  async countKeys(): Promise<number> {
    return this.db.select({ n: count() }).from(apiKeys).get()?.n ?? 0;
  }

  async usageSince(keyId: string, since: number): Promise<BucketUsage[]> {
    return this.q.usageSince.all({ keyId, since });
  }

  async usageSinceMany(keyIds: string[], since: number): Promise<Map<string, BucketUsage[]>> {
    return this.history.usageSinceMany(keyIds, since);
  }

  async usageBetween(keyId: string | null, from: number, to: number): Promise<BucketUsage[]> {
    return this.history.usageBetween(keyId, from, to);
  }

  async usageByKey(from: number, to: number, keyIds?: string[]): Promise<KeyTotal[]> {
    return this.history.usageByKey(from, to, keyIds);
  }

  async pruneUsage(before: number, limit: number): Promise<number> {
    return this.history.pruneUsage(before, limit);
  }

  async modelUsage(from: number, to: number, keyId?: string): Promise<ModelTotal[]> {
    return this.models.totals(from, to, keyId);
  }

  async pruneModelUsage(before: number, limit: number): Promise<number> {
    return this.models.prune(before, limit);
  }

  async *exportModelUsage(batchSize: number): AsyncIterable<ModelUsage[]> {
    yield* this.models.pages(batchSize);
  }

  async importModelUsage(rows: ModelUsage[]): Promise<void> {
    this.models.import(rows);
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
        const charged = new Set<string>();
        for (const k of batch.keys) {
          const hit = q.bumpTotals.get({
            keyId: k.keyId,
            tokens: k.tokens,
            requests: k.requests,
            lastUsedAt: k.lastUsedAt,
          });
          // A key deleted while its usage was pending: nothing left to charge.
          if (!hit) continue;
          charged.add(k.keyId);
          for (const b of k.buckets) q.upsertBucket.run({ keyId: k.keyId, ...b });
        }
        this.models.upsert((batch.models ?? []).filter((m) => charged.has(m.keyId)));
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

  async appendAudit(entry: NewAuditEntry): Promise<void> {
    audit.appendAudit(this.db, entry);
  }

  async listAudit(query: AuditQuery): Promise<{ entries: AuditEntry[]; total: number }> {
    return audit.listAudit(this.db, query);
  }

  async pruneAudit(before: number, limit: number): Promise<number> {
    return audit.pruneAudit(this.sqlite, before, limit);
  }

  exportAudit(batchSize: number): AsyncIterable<AuditEntry[]> {
    return audit.exportAudit(this.db, batchSize);
  }

  async importAudit(entries: AuditEntry[]): Promise<void> {
    audit.importAudit(this.sqlite, this.db, entries);
  }

  async importKeys(rows: KeyExport[], options: ImportOptions): Promise<ImportResult> {
    return importKeys(this.sqlite, this.db, this.q, rows, options);
  }

  async listCheckpoints(): Promise<Array<{ instanceId: string; lastSeq: number }>> {
    return this.db
      .select({ instanceId: usageCheckpoints.instanceId, lastSeq: usageCheckpoints.lastSeq })
      .from(usageCheckpoints)
      .all();
  }

  exportKeys(batchSize: number): AsyncIterable<KeyExport[]> {
    return exportKeys(this.db, this.q, batchSize);
  }
}

function definedOnly<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}
