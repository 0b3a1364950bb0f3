import { Database } from "bun:sqlite";
import { auditToRow } from "../../storage/audit-rows.ts";
import { openSqliteStorage } from "../../storage/sqlite/index.ts";
import type { KeyExport } from "../../storage/types.ts";
import { checkpointsAfterRestore } from "./checkpoints.ts";
import { BackupError } from "./errors.ts";
import { type Checkpoint, readLogical } from "./logical-format.ts";
import type { BackupCounts } from "./manifest.ts";
import { countsIn } from "./sqlite-file.ts";
import { differences } from "./verify.ts";

// A SQLite restore builds the restored data in a staging file first (the
// decompressed backup, or a new database filled from a logical export), then
// replaces the live tables' content from it in ONE immediate transaction. The
// live file is never swapped or truncated: any process that has it open (a
// gateway, a CLI command) keeps a valid database and sees either the old data
// or the new, never a mix, and a failure at any point rolls everything back.

const BATCH = 500;

/** Brings a staged copy (a decompressed backup) to this version's schema. */
export async function prepareStaged(staged: string): Promise<void> {
  const storage = openSqliteStorage(staged);
  try {
    await storage.migrate();
  } finally {
    await storage.close();
  }
}

/**
 * A staging database filled from a logical backup. Nobody else sees this
 * file, so it is written with plain prepared statements, a batch a
 * transaction; the counts and sums are checked when it replaces the live data.
 */
export async function stageLogical(payload: string, gzip: boolean, staged: string): Promise<void> {
  await prepareStaged(staged);
  const db = new Database(staged, { readwrite: true, create: false, strict: true });
  try {
    db.run("PRAGMA foreign_keys = ON");
    const key = db.query(
      `INSERT INTO api_keys (id, key_hash, key_prefix, name, token_limit, model, expires_at,
         max_concurrent, token_limit_week, allowed_models, disabled, created_at, updated_at, last_used_at,
         total_tokens, total_requests, revoked_at)
       VALUES ($id, $keyHash, $keyPrefix, $name, $tokenLimit, $model, $expiresAt,
         $maxConcurrent, $weeklyLimit, $allowedModels, $disabled, $createdAt, $updatedAt, $lastUsedAt, $totalTokens, $totalRequests,
         $revokedAt)`,
    );
    const bucket = db.query(
      "INSERT INTO usage_buckets (key_id, bucket_start, tokens, requests) VALUES (?, ?, ?, ?)",
    );
    const checkpoint = db.query(
      "INSERT INTO usage_checkpoints (instance_id, last_seq, updated_at) VALUES (?, ?, ?)",
    );
    const modelRow = db.query(
      `INSERT INTO model_usage (key_id, model, bucket_start, input_tokens, output_tokens,
         cache_read_tokens, cache_write_tokens, units, requests, spend_micros)
       VALUES ($keyId, $model, $bucketStart, $input, $output, $cacheRead, $cacheWrite,
         $units, $requests, $spendMicros)`,
    );
    const audit = db.query(
      `INSERT INTO audit_log (id, at, actor_kind, actor, action, key_id, key_prefix, key_name, changes)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
    );
    const write = db.transaction((rows: KeyExport[]) => {
      for (const { key: k, buckets } of rows) {
        key.run({
          ...k,
          disabled: k.disabled ? 1 : 0,
          allowedModels: k.allowedModels === null ? null : JSON.stringify(k.allowedModels),
        });
        for (const b of buckets) bucket.run(k.id, b.bucketStart, b.tokens, b.requests);
      }
    });
    let batch: KeyExport[] = [];
    for await (const r of readLogical(payload, gzip)) {
      if (r.type === "key") {
        batch.push(r.row);
        if (batch.length >= BATCH) {
          write(batch);
          batch = [];
        }
      } else if (r.type === "checkpoint") {
        checkpoint.run(r.checkpoint.instanceId, r.checkpoint.lastSeq, Date.now());
      } else if (r.type === "modelUsage") {
        // After every key: the keys still batched go first, the rows refer to them.
        write(batch);
        batch = [];
        modelRow.run({ ...r.row });
      } else if (r.type === "audit") {
        const e = auditToRow(r.entry);
        audit.run(
          r.entry.id,
          e.at,
          e.actorKind,
          e.actor,
          e.action,
          e.keyId,
          e.keyPrefix,
          e.keyName,
          e.changes,
        );
      }
    }
    write(batch);
  } finally {
    db.close();
  }
}

export interface Replaced {
  counts: BackupCounts;
  checkpoints: { kept: number; fromBackup: number };
}

/**
 * Replaces every key, usage bucket and checkpoint of the live database with
 * the staged database's, in one transaction, and checks the result against
 * `expected` before committing.
 */
export function replaceFromStaged(live: string, staged: string, expected: BackupCounts): Replaced {
  const db = new Database(live, { readwrite: true, create: false });
  try {
    db.run("PRAGMA busy_timeout = 10000");
    db.run("PRAGMA foreign_keys = ON");
    // ATTACH cannot happen inside a transaction; it changes nothing by itself.
    db.run("ATTACH DATABASE ? AS staged", [staged]);
    try {
      // IMMEDIATE: the write lock is taken up front, so a gateway's flush waits
      // for the restore instead of interleaving with it.
      return db.transaction(() => replaceTables(db, expected)).immediate();
    } finally {
      db.run("DETACH DATABASE staged");
    }
  } finally {
    db.close();
  }
}

function replaceTables(db: Database, expected: BackupCounts): Replaced {
  const readCheckpoints = (schema: string) =>
    db
      .query<Checkpoint, []>(
        `SELECT instance_id AS instanceId, last_seq AS lastSeq FROM ${schema}.usage_checkpoints`,
      )
      .all();
  const current = readCheckpoints("main");
  db.run("DELETE FROM main.model_usage");
  db.run("DELETE FROM main.usage_buckets");
  db.run("DELETE FROM main.api_keys");
  db.run("DELETE FROM main.usage_checkpoints");
  // The per-model history comes back with a file backup; a logical one does
  // not carry it (the staged copy's table is then empty).
  for (const table of ["api_keys", "usage_buckets", "model_usage"]) {
    const cols = columns(db, table);
    db.run(`INSERT INTO main.${table} (${cols}) SELECT ${cols} FROM staged.${table}`);
  }
  // The audit log is append-only: a restore brings back the backup's entries
  // that are missing here (a lost database) and keeps every entry made since.
  const auditCols = columns(db, "audit_log");
  db.run(
    `INSERT OR IGNORE INTO main.audit_log (${auditCols}) SELECT ${auditCols} FROM staged.audit_log`,
  );
  const merged = checkpointsAfterRestore(readCheckpoints("staged"), current);
  const insert = db.query(
    "INSERT INTO main.usage_checkpoints (instance_id, last_seq, updated_at) VALUES (?, ?, ?)",
  );
  const now = Date.now();
  for (const c of merged.checkpoints) insert.run(c.instanceId, c.lastSeq, now);
  const counts = countsIn(db, "main");
  const diff = differences({ ...expected, checkpoints: merged.checkpoints.length }, counts);
  // Thrown inside the transaction: it rolls back and the live data stays as it was.
  if (diff.length > 0)
    throw new BackupError(`the restored data does not match: ${diff.join(", ")}`);
  return { counts, checkpoints: { kept: merged.kept, fromBackup: merged.fromBackup } };
}

/** The live table's columns, quoted; the staged copy has the same schema (migrated to it). */
function columns(db: Database, table: string): string {
  return db
    .query<{ name: string }, []>(`PRAGMA main.table_info(${table})`)
    .all()
    .map((c) => `"${c.name.replaceAll('"', '""')}"`)
    .join(", ");
}
