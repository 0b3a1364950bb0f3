import { once } from "node:events";
import { finished } from "node:stream/promises";
import { auditToRow } from "../../storage/audit-rows.ts";
import { KEY_CHANNEL } from "../../storage/postgres/index.ts";
import { upsertModelUsage } from "../../storage/postgres/model-usage.ts";
import type { KeyExport, ModelUsage } from "../../storage/types.ts";
import { checkpointsAfterRestore } from "./checkpoints.ts";
import { BackupError, messageOf } from "./errors.ts";
import { type Checkpoint, readLogical } from "./logical-format.ts";
import type { BackupCounts, Manifest } from "./manifest.ts";
import { connect, pgCounts, type Tx } from "./pg-connect.ts";
import { archiveRows } from "./pg-dump.ts";
import { differences } from "./verify.ts";

// A PostgreSQL restore replaces every key, usage bucket and checkpoint in ONE
// transaction on a connection of its own: gateways still connected see the
// old data or the new, never a mix, and any failure rolls everything back.
// The schema is this version's own (migrated before); from a pg_dump archive
// only the table data is taken, streamed from pg_restore into COPY.

const BATCH = 500;
const KEY_COLUMNS = [
  "id",
  "key_hash",
  "key_prefix",
  "name",
  "token_limit",
  "model",
  "expires_at",
  "max_concurrent",
  "token_limit_week",
  "allowed_models",
  "disabled",
  "created_at",
  "updated_at",
  "last_used_at",
  "total_tokens",
  "total_requests",
  "revoked_at",
] as const;

export interface Loaded {
  counts: BackupCounts;
  checkpoints: { kept: number; fromBackup: number };
}

export async function replacePostgres(
  url: string,
  payload: string,
  manifest: Manifest,
): Promise<Loaded> {
  const sql = connect(url, "tollgate-restore");
  try {
    for (let attempt = 1; ; attempt++) {
      try {
        return await sql.begin((tx) => replaceIn(tx, payload, manifest));
      } catch (err) {
        // Chosen as the deadlock victim: the transaction rolled back whole, so
        // it can simply run again.
        if ((err as { code?: string }).code === DEADLOCK && attempt < 3) continue;
        throw err;
      }
    }
  } catch (err) {
    if (err instanceof BackupError) throw err;
    throw new BackupError(`the restore failed and was rolled back: ${messageOf(err)}`);
  } finally {
    await sql.end({ timeout: 5 });
  }
}

const DEADLOCK = "40P01";

async function replaceIn(tx: Tx, payload: string, manifest: Manifest): Promise<Loaded> {
  // Waits for in-flight usage flushes, then holds every writer off until
  // commit. The tables are locked in the order a flush takes them
  // (checkpoint, keys, buckets), so the two cannot deadlock.
  await tx`set local lock_timeout = '30s'`;
  await tx`lock table usage_checkpoints, api_keys, usage_buckets, model_usage in access exclusive mode`;
  const current = await readCheckpoints(tx);
  // Gateways still connected drop their cached copy of every key that changes.
  await tx`select count(pg_notify(${KEY_CHANNEL}, id)) from api_keys`;
  await tx`truncate model_usage, usage_buckets, api_keys, usage_checkpoints`;
  const fromBackup =
    manifest.format === "pg_dump"
      ? await copyFromArchive(tx, payload)
      : await insertLogical(tx, payload, manifest.compression === "gzip");
  const merged = checkpointsAfterRestore(fromBackup, current);
  if (merged.checkpoints.length > 0) {
    const now = Date.now();
    await tx`
      insert into usage_checkpoints (instance_id, last_seq, updated_at)
      select * from unnest(
        ${tx.array(merged.checkpoints.map((c) => c.instanceId))}::text[],
        ${tx.array(merged.checkpoints.map((c) => c.lastSeq))}::int8[],
        ${tx.array(merged.checkpoints.map(() => now))}::int8[])`;
  }
  await tx`select count(pg_notify(${KEY_CHANNEL}, id)) from api_keys`;
  const counts = await pgCounts(tx);
  const expected = { ...manifest.counts, checkpoints: merged.checkpoints.length };
  const diff = differences(expected, counts);
  // Thrown inside the transaction: it rolls back, nothing changes.
  if (diff.length > 0) {
    throw new BackupError(`the restored data does not match: ${diff.join(", ")}`);
  }
  return { counts, checkpoints: { kept: merged.kept, fromBackup: merged.fromBackup } };
}

async function readCheckpoints(tx: Tx): Promise<Checkpoint[]> {
  const rows = await tx<{ instance_id: string; last_seq: string }[]>`
    select instance_id, last_seq from usage_checkpoints`;
  return rows.map((r) => ({ instanceId: r.instance_id, lastSeq: Number(r.last_seq) }));
}

/** Streams the keys and buckets of an archive into the tables; returns its checkpoints. */
async function copyFromArchive(tx: Tx, payload: string): Promise<Checkpoint[]> {
  // One table at a time, keys first: their usage refers to them. An archive
  // made before per-model history has no model_usage: nothing is copied.
  for (const table of ["api_keys", "usage_buckets", "model_usage"] as const) {
    await copyTable(tx, payload, table, `public.${table}`);
  }
  // The audit log is append-only: the backup's entries missing here (a lost
  // database) come back, and every entry made since the backup stays.
  await tx`create temp table audit_restore (like audit_log) on commit drop`;
  await copyTable(tx, payload, "audit_log", "audit_restore");
  await tx`insert into audit_log select * from audit_restore on conflict (id) do nothing`;
  await tx`select setval(pg_get_serial_sequence('audit_log', 'id'), coalesce((select max(id) from audit_log), 0) + 1, false)`;
  const checkpoints: Checkpoint[] = [];
  const checkpointRows = archiveRows(payload, [{ schema: "public", table: "usage_checkpoints" }]);
  for await (const { header, lines } of checkpointRows) {
    const id = header.columns.indexOf("instance_id");
    const seq = header.columns.indexOf("last_seq");
    for (const line of lines) {
      const cells = line.split("\t");
      checkpoints.push({ instanceId: unescapeCopy(cells[id] ?? ""), lastSeq: Number(cells[seq]) });
    }
  }
  return checkpoints;
}

/** Streams one table of the archive into `target` with COPY; nothing when the archive lacks it. */
async function copyTable(tx: Tx, payload: string, table: string, target: string): Promise<void> {
  const live = await liveColumns(tx, table);
  let sink: Awaited<ReturnType<ReturnType<Tx["unsafe"]>["writable"]>> | undefined;
  for await (const { header, lines } of archiveRows(payload, [{ schema: "public", table }])) {
    if (!sink) {
      const unknown = header.columns.filter((c) => !live.includes(c));
      if (unknown.length > 0) {
        throw new BackupError(
          `the archive's ${table} has columns this version does not know (${unknown.join(", ")})`,
        );
      }
      // Identifiers come from the archive's COPY line, which only matches [a-z0-9_].
      sink = await tx.unsafe(`copy ${target} (${header.columns.join(", ")}) from stdin`).writable();
    }
    if (!sink.write(`${lines.join("\n")}\n`)) await once(sink, "drain");
  }
  if (sink) {
    sink.end();
    await finished(sink);
  }
}

async function liveColumns(tx: Tx, table: string): Promise<string[]> {
  const rows = await tx<{ column_name: string }[]>`
    select column_name from information_schema.columns
    where table_schema = 'public' and table_name = ${table}`;
  return rows.map((r) => r.column_name);
}

/** COPY text format escapes (https://www.postgresql.org/docs/current/sql-copy.html#id-1.9.3.55.9.2). */
function unescapeCopy(s: string): string {
  return s.replace(/\\(.)/g, (_, c: string) =>
    c === "t" ? "\t" : c === "n" ? "\n" : c === "r" ? "\r" : c,
  );
}

/** Inserts the keys and buckets of a logical backup in batches; returns its checkpoints. */
async function insertLogical(tx: Tx, payload: string, gzip: boolean): Promise<Checkpoint[]> {
  const checkpoints: Checkpoint[] = [];
  let batch: KeyExport[] = [];
  let models: ModelUsage[] = [];
  for await (const r of readLogical(payload, gzip)) {
    if (r.type === "key") {
      batch.push(r.row);
      if (batch.length >= BATCH) {
        await insertKeys(tx, batch);
        batch = [];
      }
    } else if (r.type === "checkpoint") {
      checkpoints.push(r.checkpoint);
    } else if (r.type === "modelUsage") {
      // After every key: the keys still batched go first, the rows refer to them.
      if (batch.length > 0) await insertKeys(tx, batch);
      batch = [];
      models.push(r.row);
      if (models.length >= BATCH) {
        await upsertModelUsage(tx, models);
        models = [];
      }
    } else if (r.type === "audit") {
      // Append-only: the backup's entries missing here come back, the rest stay.
      const e = auditToRow(r.entry);
      await tx`
        insert into audit_log (id, at, actor_kind, actor, action, key_id, key_prefix, key_name, changes)
        values (${r.entry.id}, ${e.at}, ${e.actorKind}, ${e.actor}, ${e.action}, ${e.keyId},
                ${e.keyPrefix}, ${e.keyName}, ${e.changes})
        on conflict (id) do nothing`;
    }
  }
  if (batch.length > 0) await insertKeys(tx, batch);
  await upsertModelUsage(tx, models);
  await tx`select setval(pg_get_serial_sequence('audit_log', 'id'), coalesce((select max(id) from audit_log), 0) + 1, false)`;
  return checkpoints;
}

async function insertKeys(tx: Tx, rows: KeyExport[]): Promise<void> {
  const keys = rows.map(({ key: k }) => ({
    id: k.id,
    key_hash: k.keyHash,
    key_prefix: k.keyPrefix,
    name: k.name,
    token_limit: k.tokenLimit,
    model: k.model,
    expires_at: k.expiresAt,
    max_concurrent: k.maxConcurrent,
    token_limit_week: k.weeklyLimit,
    // The driver serialises it as JSON for the jsonb column.
    allowed_models: k.allowedModels,
    disabled: k.disabled,
    created_at: k.createdAt,
    updated_at: k.updatedAt,
    last_used_at: k.lastUsedAt,
    total_tokens: k.totalTokens,
    total_requests: k.totalRequests,
    revoked_at: k.revokedAt,
  }));
  await tx`insert into api_keys ${tx(keys, ...KEY_COLUMNS)}`;
  const buckets = rows.flatMap((r) => r.buckets.map((b) => ({ keyId: r.key.id, ...b })));
  for (let i = 0; i < buckets.length; i += 5 * BATCH) {
    const part = buckets.slice(i, i + 5 * BATCH);
    await tx`
      insert into usage_buckets (key_id, bucket_start, tokens, requests)
      select * from unnest(
        ${tx.array(part.map((b) => b.keyId))}::text[],
        ${tx.array(part.map((b) => b.bucketStart))}::int8[],
        ${tx.array(part.map((b) => b.tokens))}::int8[],
        ${tx.array(part.map((b) => b.requests))}::int8[])`;
  }
}
