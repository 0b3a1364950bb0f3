import { and, asc, eq, gt, inArray, or } from "drizzle-orm";
import {
  type BucketUsage,
  type ImportOptions,
  type ImportResult,
  ImportVerificationError,
  type KeyExport,
  type KeyRecord,
} from "../types.ts";
import type { Db } from "./database.ts";
import { apiKeys, usageBuckets } from "./schema.ts";

// Bulk import and export of keys with their usage buckets, for `migrate`,
// `db copy` and logical backups.

/** Rows per INSERT when importing: well under PostgreSQL's 65535 parameters. */
const IMPORT_CHUNK = 500;

/** Writes `rows` in one transaction, verified before it commits. */
export async function importKeys(
  db: Db,
  rows: KeyExport[],
  options: ImportOptions,
): Promise<ImportResult> {
  return db.transaction(async (tx) => {
    const skipped: string[] = [];
    const written: KeyExport[] = [];
    for (let i = 0; i < rows.length; i += IMPORT_CHUNK) {
      const chunk = rows.slice(i, i + IMPORT_CHUNK);
      const present = await tx
        .select({ id: apiKeys.id, keyHash: apiKeys.keyHash })
        .from(apiKeys)
        .where(
          inArray(
            apiKeys.keyHash,
            chunk.map((r) => r.key.keyHash),
          ),
        );
      const byHash = new Map(present.map((p) => [p.keyHash, p.id]));
      const fresh = chunk.filter((r) => {
        const id = byHash.get(r.key.keyHash);
        if (id !== undefined && options.skipExisting) skipped.push(id);
        return id === undefined || !options.skipExisting;
      });
      if (fresh.length > 0) {
        await tx.insert(apiKeys).values(fresh.map((r) => r.key));
        const buckets = fresh.flatMap((r) => r.buckets.map((b) => ({ keyId: r.key.id, ...b })));
        for (let j = 0; j < buckets.length; j += IMPORT_CHUNK) {
          await tx.insert(usageBuckets).values(buckets.slice(j, j + IMPORT_CHUNK));
        }
        written.push(...fresh);
      }
      options.onProgress?.(Math.min(i + IMPORT_CHUNK, rows.length), rows.length);
    }
    if (options.verify && written.length > 0) {
      const ids = written.map((w) => w.key.id);
      const readBack: KeyExport[] = [];
      for (let i = 0; i < ids.length; i += IMPORT_CHUNK) {
        const part = ids.slice(i, i + IMPORT_CHUNK);
        readBack.push(
          ...(await withBuckets(
            tx,
            await tx.select().from(apiKeys).where(inArray(apiKeys.id, part)),
          )),
        );
      }
      const problems = options.verify(readBack);
      if (problems.length > 0) throw new ImportVerificationError(problems);
    }
    return { inserted: written.length, skipped };
  });
}

/** Every key with its buckets, a batch at a time. */
export async function* exportKeys(db: Db, batchSize: number): AsyncIterable<KeyExport[]> {
  // Keyset pagination on (created_at, id): one batch in memory at a time.
  let after: { createdAt: number; id: string } | null = null;
  for (;;) {
    const keys: KeyRecord[] = await db
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
      .limit(batchSize);
    if (keys.length === 0) return;
    yield await withBuckets(db, keys);
    const last = keys[keys.length - 1] as KeyRecord;
    after = { createdAt: last.createdAt, id: last.id };
  }
}

async function withBuckets(db: Pick<Db, "select">, keys: KeyRecord[]): Promise<KeyExport[]> {
  if (keys.length === 0) return [];
  const rows = await db
    .select()
    .from(usageBuckets)
    .where(
      inArray(
        usageBuckets.keyId,
        keys.map((k) => k.id),
      ),
    )
    .orderBy(asc(usageBuckets.keyId), asc(usageBuckets.bucketStart));
  const byKey = new Map<string, BucketUsage[]>();
  for (const r of rows) {
    const list = byKey.get(r.keyId) ?? [];
    list.push({ bucketStart: r.bucketStart, tokens: r.tokens, requests: r.requests });
    byKey.set(r.keyId, list);
  }
  return keys.map((key) => ({ key, buckets: byKey.get(key.id) ?? [] }));
}
