import { Database } from "bun:sqlite";
import { drizzle } from "drizzle-orm/bun-sqlite";
import { auditToRow } from "../audit-rows.ts";
import type { AuditEntry, DataCounts, KeyExport, ModelUsage } from "../types.ts";
import { openSqliteStorage } from "./index.ts";
import { apiKeys, auditLog, modelUsage, usageBuckets, usageCheckpoints } from "./schema.ts";

// The SQL of a SQLite restore. The caller (ops/backup) decides what to write
// and checks the result; only this file speaks to the tables.
//
// A restore builds the restored data in a staging file first (a decompressed
// backup, or a new database filled from a logical export), then replaces the
// live tables' content from it in ONE immediate transaction. The live file is
// never swapped or truncated: any process that has it open (a gateway, a CLI
// command) keeps a valid database and sees either the old data or the new,
// never a mix, and a failure at any point rolls everything back.

export interface Checkpoint {
  instanceId: string;
  lastSeq: number;
}

/** Brings a staged copy (a decompressed backup) to this version's schema. */
export async function migrateStaged(staged: string): Promise<void> {
  const storage = openSqliteStorage(staged);
  try {
    await storage.migrate();
  } finally {
    await storage.close();
  }
}

/**
 * Writes into a staging database, migrated first. Nobody else sees the file,
 * so each call is one plain transaction; the counts and sums are checked when
 * it replaces the live data.
 */
export async function openStagingWriter(staged: string) {
  await migrateStaged(staged);
  const sqlite = new Database(staged, { readwrite: true, create: false, strict: true });
  sqlite.run("PRAGMA foreign_keys = ON");
  const db = drizzle(sqlite);
  return {
    insertKeys: sqlite.transaction((rows: KeyExport[]) => {
      for (const { key, buckets } of rows) {
        db.insert(apiKeys).values(key).run();
        for (const b of buckets)
          db.insert(usageBuckets)
            .values({ keyId: key.id, ...b })
            .run();
      }
    }),
    insertCheckpoint(c: Checkpoint, now: number): void {
      db.insert(usageCheckpoints)
        .values({ instanceId: c.instanceId, lastSeq: c.lastSeq, updatedAt: now })
        .run();
    },
    insertModelUsage(r: ModelUsage): void {
      db.insert(modelUsage)
        .values({
          keyId: r.keyId,
          model: r.model,
          bucketStart: r.bucketStart,
          inputTokens: r.input,
          outputTokens: r.output,
          cacheReadTokens: r.cacheRead,
          cacheWriteTokens: r.cacheWrite,
          units: r.units,
          requests: r.requests,
          spendMicros: r.spendMicros,
        })
        .run();
    },
    insertAudit(entry: AuditEntry): void {
      db.insert(auditLog)
        .values({ id: entry.id, ...auditToRow(entry) })
        .run();
    },
    close: () => sqlite.close(),
  };
}

export interface ReplaceRules<T> {
  /** The checkpoints to keep, from the staged copy's and the live database's. */
  checkpoints(staged: Checkpoint[], live: Checkpoint[]): Checkpoint[];
  /** Looks at the result before it commits; throwing rolls the whole replacement back. */
  check(counts: DataCounts, checkpoints: Checkpoint[]): T;
}

/**
 * Replaces every key, usage bucket, per-model row and checkpoint of the live
 * database with the staged database's, in one immediate transaction; the
 * audit log keeps its entries and gains the staged ones it lacks.
 */
export function replaceFromStaged<T>(live: string, staged: string, rules: ReplaceRules<T>): T {
  const db = new Database(live, { readwrite: true, create: false });
  try {
    db.run("PRAGMA busy_timeout = 10000");
    db.run("PRAGMA foreign_keys = ON");
    // ATTACH cannot happen inside a transaction; it changes nothing by itself.
    db.run("ATTACH DATABASE ? AS staged", [staged]);
    try {
      // IMMEDIATE: the write lock is taken up front, so a gateway's flush waits
      // for the restore instead of interleaving with it.
      return db.transaction(() => replaceTables(db, rules)).immediate();
    } finally {
      db.run("DETACH DATABASE staged");
    }
  } finally {
    db.close();
  }
}

function replaceTables<T>(db: Database, rules: ReplaceRules<T>): T {
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
  const kept = rules.checkpoints(readCheckpoints("staged"), current);
  const insert = db.query(
    "INSERT INTO main.usage_checkpoints (instance_id, last_seq, updated_at) VALUES (?, ?, ?)",
  );
  const now = Date.now();
  for (const c of kept) insert.run(c.instanceId, c.lastSeq, now);
  return rules.check(dataCounts(db, "main"), kept);
}

/** The live table's columns, quoted; the staged copy has the same schema (migrated to it). */
function columns(db: Database, table: string): string {
  return db
    .query<{ name: string }, []>(`PRAGMA main.table_info(${table})`)
    .all()
    .map((c) => `"${c.name.replaceAll('"', '""')}"`)
    .join(", ");
}

/** Counts and sums of the data tables of a database (`schema` names an attached one). */
export function dataCounts(db: Database, schema = "main"): DataCounts {
  const keys = db
    .query<{ n: number; t: number; r: number }, []>(
      `SELECT count(*) AS n, coalesce(sum(total_tokens), 0) AS t, coalesce(sum(total_requests), 0) AS r FROM ${schema}.api_keys`,
    )
    .get();
  const buckets = db
    .query<{ n: number; t: number }, []>(
      `SELECT count(*) AS n, coalesce(sum(tokens), 0) AS t FROM ${schema}.usage_buckets`,
    )
    .get();
  const checkpoints = db
    .query<{ n: number }, []>(`SELECT count(*) AS n FROM ${schema}.usage_checkpoints`)
    .get();
  return {
    keys: keys?.n ?? 0,
    usageBuckets: buckets?.n ?? 0,
    lifetimeTokens: keys?.t ?? 0,
    lifetimeRequests: keys?.r ?? 0,
    bucketTokens: buckets?.t ?? 0,
    checkpoints: checkpoints?.n ?? 0,
  };
}
