import {
  COPIED_TABLES,
  type CopyChunk,
  inRestoreTransaction,
  type RestoreWriter,
  UnknownColumnsError,
} from "../../storage/postgres/restore.ts";
import type { KeyExport, ModelUsage } from "../../storage/types.ts";
import { checkpointsAfterRestore } from "./checkpoints.ts";
import { BackupError, messageOf } from "./errors.ts";
import { type Checkpoint, readLogical } from "./logical-format.ts";
import type { BackupCounts, Manifest } from "./manifest.ts";
import { archiveRows } from "./pg-dump.ts";
import { differences } from "./verify.ts";

// A PostgreSQL restore replaces every key, usage bucket and checkpoint in ONE
// transaction on a connection of its own: gateways still connected see the
// old data or the new, never a mix, and any failure rolls everything back.
// The schema is this version's own (migrated before); from a pg_dump archive
// only the table data is taken, streamed from pg_restore into COPY. What to
// write is decided here; the transaction and the SQL that writes it are
// storage's (storage/postgres/restore.ts).

const BATCH = 500;

export interface Loaded {
  counts: BackupCounts;
  checkpoints: { kept: number; fromBackup: number };
}

export async function replacePostgres(
  url: string,
  payload: string,
  manifest: Manifest,
): Promise<Loaded> {
  try {
    return await inRestoreTransaction(url, "tollgate-restore", (db) =>
      replaceIn(db, payload, manifest),
    );
  } catch (err) {
    if (err instanceof BackupError) throw err;
    throw new BackupError(`the restore failed and was rolled back: ${messageOf(err)}`);
  }
}

async function replaceIn(db: RestoreWriter, payload: string, manifest: Manifest): Promise<Loaded> {
  await db.lockAll();
  const current = await db.checkpoints();
  await db.notifyEveryKey();
  await db.truncateAll();
  const fromBackup =
    manifest.format === "pg_dump"
      ? await copyFromArchive(db, payload)
      : await insertLogical(db, payload, manifest.compression === "gzip");
  await db.continueAuditIds();
  const merged = checkpointsAfterRestore(fromBackup, current);
  await db.insertCheckpoints(merged.checkpoints, Date.now());
  await db.notifyEveryKey();
  const counts = await db.counts();
  const expected = { ...manifest.counts, checkpoints: merged.checkpoints.length };
  const diff = differences(expected, counts);
  // Thrown inside the transaction: it rolls back, nothing changes.
  if (diff.length > 0) {
    throw new BackupError(`the restored data does not match: ${diff.join(", ")}`);
  }
  return { counts, checkpoints: { kept: merged.kept, fromBackup: merged.fromBackup } };
}

/** One table of an archive, as the writer's COPY chunks. */
async function* tableChunks(payload: string, table: string): AsyncIterable<CopyChunk> {
  for await (const { header, lines } of archiveRows(payload, [{ schema: "public", table }])) {
    yield { columns: header.columns, lines };
  }
}

/** Streams the keys, usage and audit log of an archive into the tables; returns its checkpoints. */
async function copyFromArchive(db: RestoreWriter, payload: string): Promise<Checkpoint[]> {
  try {
    // An archive made before per-model history has no model_usage: nothing is copied.
    for (const table of COPIED_TABLES) await db.copyInto(table, tableChunks(payload, table));
    await db.mergeAudit(tableChunks(payload, "audit_log"));
  } catch (err) {
    if (err instanceof UnknownColumnsError) throw new BackupError(err.message);
    throw err;
  }
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

/** COPY text format escapes (https://www.postgresql.org/docs/current/sql-copy.html#id-1.9.3.55.9.2). */
function unescapeCopy(s: string): string {
  return s.replace(/\\(.)/g, (_, c: string) =>
    c === "t" ? "\t" : c === "n" ? "\n" : c === "r" ? "\r" : c,
  );
}

/** Inserts the keys, usage and audit entries of a logical backup in batches; returns its checkpoints. */
async function insertLogical(
  db: RestoreWriter,
  payload: string,
  gzip: boolean,
): Promise<Checkpoint[]> {
  const checkpoints: Checkpoint[] = [];
  let batch: KeyExport[] = [];
  let models: ModelUsage[] = [];
  for await (const r of readLogical(payload, gzip)) {
    if (r.type === "key") {
      batch.push(r.row);
      if (batch.length >= BATCH) {
        await db.insertKeys(batch);
        batch = [];
      }
    } else if (r.type === "checkpoint") {
      checkpoints.push(r.checkpoint);
    } else if (r.type === "modelUsage") {
      // After every key: the keys still batched go first, the rows refer to them.
      await db.insertKeys(batch);
      batch = [];
      models.push(r.row);
      if (models.length >= BATCH) {
        await db.insertModelUsage(models);
        models = [];
      }
    } else if (r.type === "audit") {
      // Append-only: the backup's entries missing here come back, the rest stay.
      await db.insertAudit(r.entry);
    }
  }
  await db.insertKeys(batch);
  await db.insertModelUsage(models);
  return checkpoints;
}
