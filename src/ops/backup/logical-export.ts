import { auditFromRow } from "../../storage/audit-rows.ts";
import { exportModelUsage } from "../../storage/postgres/model-usage.ts";
import { openSqliteStorage } from "../../storage/sqlite/index.ts";
import type { AuditEntry, BucketUsage, KeyExport, KeyRecord } from "../../storage/types.ts";
import { BackupError, messageOf } from "./errors.ts";
import type { LogicalWriter } from "./logical-format.ts";
import type { SchemaVersion } from "./manifest.ts";
import { connect, pgSchema, type Tx } from "./pg-connect.ts";

/** Keys per batch: one batch in memory at a time. */
const BATCH = 500;

/**
 * Streams a SQLite snapshot (a VACUUM INTO copy nobody else uses, hence
 * consistent) into a logical backup. The copy is brought to this version's
 * schema first, which only ever touches the copy.
 */
export async function exportSqliteSnapshot(snapshot: string, out: LogicalWriter): Promise<void> {
  const storage = openSqliteStorage(snapshot);
  try {
    await storage.migrate();
    if (!storage.exportKeys || !storage.listCheckpoints) throw new Error("cannot export");
    for await (const batch of storage.exportKeys(BATCH)) await out.keys(batch);
    await out.checkpoints(await storage.listCheckpoints());
    if (storage.exportModelUsage) {
      for await (const rows of storage.exportModelUsage(BATCH)) await out.modelUsage(rows);
    }
    if (storage.exportAudit) {
      for await (const entries of storage.exportAudit(BATCH)) await out.audit(entries);
    }
  } finally {
    await storage.close();
  }
}

/**
 * Streams a PostgreSQL database into a logical backup from one
 * repeatable-read transaction: every batch is read from the same snapshot,
 * so totals, buckets and checkpoints agree however busy the gateways are.
 */
export async function exportPostgres(
  url: string,
  write: (header: SchemaVersion) => Promise<LogicalWriter>,
): Promise<void> {
  const sql = connect(url, "tollgate-backup");
  try {
    await sql.begin("isolation level repeatable read read only", async (tx) => {
      const out = await write(await pgSchema(tx));
      let after: { createdAt: number; id: string } | null = null;
      for (;;) {
        const keys = await keyBatch(tx, after);
        if (keys.length === 0) break;
        await out.keys(await withBuckets(tx, keys));
        const last = keys[keys.length - 1] as KeyRecord;
        after = { createdAt: last.createdAt, id: last.id };
      }
      const cps = await tx<{ instance_id: string; last_seq: string }[]>`
        select instance_id, last_seq from usage_checkpoints order by instance_id`;
      await out.checkpoints(
        cps.map((c) => ({ instanceId: c.instance_id, lastSeq: Number(c.last_seq) })),
      );
      // The per-model history, when the database has it (schema 0005 on).
      const [hasModels] = await tx<{ n: number }[]>`
        select count(*)::int as n from information_schema.tables
        where table_schema = 'public' and table_name = 'model_usage'`;
      if ((hasModels?.n ?? 0) > 0) {
        for await (const rows of exportModelUsage(tx, BATCH)) await out.modelUsage(rows);
      }
      // The audit log, when the database has one (schema 0003 on).
      const [hasAudit] = await tx<{ n: number }[]>`
        select count(*)::int as n from information_schema.tables
        where table_schema = 'public' and table_name = 'audit_log'`;
      let afterId = 0;
      while ((hasAudit?.n ?? 0) > 0) {
        const rows = await tx<AuditRowText[]>`
          select id, at, actor_kind, actor, action, key_id, key_prefix, key_name, changes
          from audit_log where id > ${afterId} order by id limit ${BATCH}`;
        if (rows.length === 0) break;
        await out.audit(rows.map(auditEntry));
        afterId = Number(rows[rows.length - 1]?.id);
      }
    });
  } catch (err) {
    if (err instanceof BackupError) throw err;
    throw new BackupError(`cannot export PostgreSQL: ${messageOf(err)}`);
  } finally {
    await sql.end({ timeout: 5 });
  }
}

interface KeyRow {
  id: string;
  key_hash: string;
  key_prefix: string;
  name: string;
  token_limit: string;
  model: string | null;
  expires_at: string | null;
  /** int4, so already a number; absent from a database not yet migrated to it. */
  max_concurrent?: number | null;
  /** int8, so a string; absent from a database not yet migrated to it. */
  token_limit_week?: string | null;
  /** jsonb, parsed by the driver; absent from a database not yet migrated to it. */
  allowed_models?: string[] | null;
  disabled: boolean;
  created_at: string;
  updated_at: string;
  last_used_at: string | null;
  total_tokens: string;
  total_requests: string;
  /** Absent from a database not yet migrated to it. */
  revoked_at?: string | null;
}

const num = (v: string | null) => (v === null ? null : Number(v));

function keyRecord(r: KeyRow): KeyRecord {
  return {
    id: r.id,
    keyHash: r.key_hash,
    keyPrefix: r.key_prefix,
    name: r.name,
    tokenLimit: Number(r.token_limit),
    model: r.model,
    expiresAt: num(r.expires_at),
    maxConcurrent: r.max_concurrent ?? null,
    weeklyLimit: num(r.token_limit_week ?? null),
    allowedModels: r.allowed_models ?? null,
    disabled: r.disabled,
    createdAt: Number(r.created_at),
    updatedAt: Number(r.updated_at),
    lastUsedAt: num(r.last_used_at),
    totalTokens: Number(r.total_tokens),
    totalRequests: Number(r.total_requests),
    revokedAt: num(r.revoked_at ?? null),
  };
}

async function keyBatch(
  tx: Tx,
  after: { createdAt: number; id: string } | null,
): Promise<KeyRecord[]> {
  // Keyset pagination on (created_at, id), as the storage's own export does.
  const rows = after
    ? await tx<KeyRow[]>`
        select * from api_keys where (created_at, id) > (${after.createdAt}::int8, ${after.id}::text)
        order by created_at, id limit ${BATCH}`
    : await tx<KeyRow[]>`select * from api_keys order by created_at, id limit ${BATCH}`;
  return rows.map(keyRecord);
}

async function withBuckets(tx: Tx, keys: KeyRecord[]): Promise<KeyExport[]> {
  const rows = await tx<
    { key_id: string; bucket_start: string; tokens: string; requests: string }[]
  >`
    select key_id, bucket_start, tokens, requests from usage_buckets
    where key_id = any(${tx.array(keys.map((k) => k.id))}::text[])
    order by key_id, bucket_start`;
  const byKey = new Map<string, BucketUsage[]>();
  for (const r of rows) {
    const list = byKey.get(r.key_id) ?? [];
    list.push({
      bucketStart: Number(r.bucket_start),
      tokens: Number(r.tokens),
      requests: Number(r.requests),
    });
    byKey.set(r.key_id, list);
  }
  return keys.map((key) => ({ key, buckets: byKey.get(key.id) ?? [] }));
}

interface AuditRowText {
  id: string;
  at: string;
  actor_kind: string;
  actor: string;
  action: string;
  key_id: string | null;
  key_prefix: string | null;
  key_name: string | null;
  changes: string | null;
}

function auditEntry(r: AuditRowText): AuditEntry {
  return auditFromRow({
    id: Number(r.id),
    at: Number(r.at),
    actorKind: r.actor_kind,
    actor: r.actor,
    action: r.action,
    keyId: r.key_id,
    keyPrefix: r.key_prefix,
    keyName: r.key_name,
    changes: r.changes,
  });
}
