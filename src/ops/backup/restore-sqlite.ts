import {
  migrateStaged,
  openStagingWriter,
  replaceFromStaged as replaceTables,
} from "../../storage/sqlite/restore.ts";
import type { KeyExport } from "../../storage/types.ts";
import { checkpointsAfterRestore } from "./checkpoints.ts";
import { BackupError } from "./errors.ts";
import { readLogical } from "./logical-format.ts";
import type { BackupCounts } from "./manifest.ts";
import { differences } from "./verify.ts";

// A SQLite restore: the backup is staged in a file of its own, then replaces
// the live tables' content in one transaction (storage/sqlite/restore.ts
// writes both). What to write and what to check is decided here.

const BATCH = 500;

/** Brings a staged copy (a decompressed backup) to this version's schema. */
export const prepareStaged = migrateStaged;

/** Fills a staging database from a logical backup. */
export async function stageLogical(payload: string, gzip: boolean, staged: string): Promise<void> {
  const db = await openStagingWriter(staged);
  try {
    let batch: KeyExport[] = [];
    for await (const r of readLogical(payload, gzip)) {
      if (r.type === "key") {
        batch.push(r.row);
        if (batch.length >= BATCH) {
          db.insertKeys(batch);
          batch = [];
        }
      } else if (r.type === "checkpoint") {
        db.insertCheckpoint(r.checkpoint, Date.now());
      } else if (r.type === "modelUsage") {
        // After every key: the keys still batched go first, the rows refer to them.
        db.insertKeys(batch);
        batch = [];
        db.insertModelUsage(r.row);
      } else if (r.type === "audit") {
        db.insertAudit(r.entry);
      }
    }
    db.insertKeys(batch);
  } finally {
    db.close();
  }
}

export interface Replaced {
  counts: BackupCounts;
  checkpoints: { kept: number; fromBackup: number };
}

/**
 * Replaces the live database's data with the staged database's, in one
 * transaction, checked against `expected` before it commits.
 */
export function replaceFromStaged(live: string, staged: string, expected: BackupCounts): Replaced {
  let merged: ReturnType<typeof checkpointsAfterRestore> | undefined;
  return replaceTables(live, staged, {
    checkpoints(fromBackup, current) {
      merged = checkpointsAfterRestore(fromBackup, current);
      return merged.checkpoints;
    },
    check(counts, kept) {
      const diff = differences({ ...expected, checkpoints: kept.length }, counts);
      // Thrown inside the transaction: it rolls back and the live data stays as it was.
      if (diff.length > 0)
        throw new BackupError(`the restored data does not match: ${diff.join(", ")}`);
      return {
        counts,
        checkpoints: { kept: merged?.kept ?? 0, fromBackup: merged?.fromBackup ?? 0 },
      };
    },
  });
}
