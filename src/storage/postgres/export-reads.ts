import { auditFromRow } from "../audit-rows.ts";
import type { AuditEntry, BucketUsage, KeyExport, KeyRecord, ModelUsage } from "../types.ts";
import { exportModelUsage } from "./model-usage.ts";
import type { Tx } from "./own-connection.ts";

// The reads of a logical export, written for any schema a backup may meet:
// `select *` on the keys, and tables added by later migrations (model_usage,
// audit_log) read only where they exist. Run inside one repeatable-read
// transaction (snapshot.ts), every batch sees the same data.

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

/** Every key with its usage buckets, `batch` keys at a time. */
export async function* exportKeysWithBuckets(tx: Tx, batch: number): AsyncGenerator<KeyExport[]> {
  let after: { createdAt: number; id: string } | null = null;
  for (;;) {
    const keys = await keyBatch(tx, after, batch);
    if (keys.length === 0) return;
    yield await withBuckets(tx, keys);
    const last = keys[keys.length - 1] as KeyRecord;
    after = { createdAt: last.createdAt, id: last.id };
  }
}

async function keyBatch(
  tx: Tx,
  after: { createdAt: number; id: string } | null,
  batch: number,
): Promise<KeyRecord[]> {
  // Keyset pagination on (created_at, id), as the storage's own export does.
  const rows = after
    ? await tx<KeyRow[]>`
        select * from api_keys where (created_at, id) > (${after.createdAt}::int8, ${after.id}::text)
        order by created_at, id limit ${batch}`
    : await tx<KeyRow[]>`select * from api_keys order by created_at, id limit ${batch}`;
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

export async function exportCheckpoints(
  tx: Tx,
): Promise<Array<{ instanceId: string; lastSeq: number }>> {
  const cps = await tx<{ instance_id: string; last_seq: string }[]>`
    select instance_id, last_seq from usage_checkpoints order by instance_id`;
  return cps.map((c) => ({ instanceId: c.instance_id, lastSeq: Number(c.last_seq) }));
}

async function hasTable(tx: Tx, table: string): Promise<boolean> {
  const [row] = await tx<{ n: number }[]>`
    select count(*)::int as n from information_schema.tables
    where table_schema = 'public' and table_name = ${table}`;
  return (row?.n ?? 0) > 0;
}

/** The per-model history, when the database has it (schema 0005 on). */
export async function* exportModelUsageIfAny(tx: Tx, batch: number): AsyncGenerator<ModelUsage[]> {
  if (await hasTable(tx, "model_usage")) yield* exportModelUsage(tx, batch);
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

/** The audit log in id order, when the database has one (schema 0003 on). */
export async function* exportAuditIfAny(tx: Tx, batch: number): AsyncGenerator<AuditEntry[]> {
  if (!(await hasTable(tx, "audit_log"))) return;
  let afterId = 0;
  for (;;) {
    const rows = await tx<AuditRowText[]>`
      select id, at, actor_kind, actor, action, key_id, key_prefix, key_name, changes
      from audit_log where id > ${afterId} order by id limit ${batch}`;
    if (rows.length === 0) return;
    yield rows.map(auditEntry);
    afterId = Number(rows[rows.length - 1]?.id);
  }
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
