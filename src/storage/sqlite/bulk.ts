import type { Database } from "bun:sqlite";
import { and, asc, eq, gt, or } from "drizzle-orm";
import {
  type ImportOptions,
  type ImportResult,
  ImportVerificationError,
  type KeyExport,
  type KeyRecord,
} from "../types.ts";
import { apiKeys, usageBuckets } from "./schema.ts";
import type { Db, Statements } from "./statements.ts";

// Bulk import and export of keys with their usage buckets, for `migrate`,
// `db copy` and logical backups.

/** Writes `rows` in one immediate transaction, verified before it commits. */
export function importKeys(
  sqlite: Database,
  db: Db,
  q: Statements,
  rows: KeyExport[],
  options: ImportOptions,
): ImportResult {
  return sqlite
    .transaction((): ImportResult => {
      const skipped: string[] = [];
      const written: KeyExport[] = [];
      rows.forEach((row, i) => {
        const existing = q.keyByHash.get({ keyHash: row.key.keyHash });
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
        if ((i + 1) % 500 === 0 || i + 1 === rows.length) options.onProgress?.(i + 1, rows.length);
      });
      if (options.verify) {
        const readBack = written.map((w) => ({
          key: q.keyById.get({ id: w.key.id }) as KeyRecord,
          buckets: q.usageSince.all({ keyId: w.key.id, since: Number.MIN_SAFE_INTEGER }),
        }));
        const problems = options.verify(readBack);
        // Throwing inside the transaction rolls it back.
        if (problems.length > 0) throw new ImportVerificationError(problems);
      }
      return { inserted: written.length, skipped };
    })
    .immediate();
}

/** Every key with its buckets, a batch at a time. */
export async function* exportKeys(
  db: Db,
  q: Statements,
  batchSize: number,
): AsyncIterable<KeyExport[]> {
  // Keyset pagination on (created_at, id): stable while others write, and
  // only one batch in memory at a time.
  let after: { createdAt: number; id: string } | null = null;
  for (;;) {
    const keys: KeyRecord[] = db
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
      buckets: q.usageSince.all({ keyId: key.id, since: Number.MIN_SAFE_INTEGER }),
    }));
    const last = keys[keys.length - 1] as KeyRecord;
    after = { createdAt: last.createdAt, id: last.id };
  }
}
