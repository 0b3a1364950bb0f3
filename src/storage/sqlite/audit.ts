import type { Database } from "bun:sqlite";
import { and, asc, count, desc, eq, gt, gte, type SQL } from "drizzle-orm";
import { auditFromRow, auditToRow } from "../audit-rows.ts";
import type { AuditEntry, AuditQuery, NewAuditEntry } from "../types.ts";
import { auditLog } from "./schema.ts";
import type { Db } from "./statements.ts";

// The audit log in SQLite: appended to, read newest first, pruned by age.

function auditWhere(q: Pick<AuditQuery, "keyId" | "since">): SQL | undefined {
  return and(
    q.keyId === undefined ? undefined : eq(auditLog.keyId, q.keyId),
    q.since === undefined ? undefined : gte(auditLog.at, q.since),
  );
}

export function appendAudit(db: Db, entry: NewAuditEntry): void {
  db.insert(auditLog).values(auditToRow(entry)).run();
}

export function listAudit(db: Db, q: AuditQuery): { entries: AuditEntry[]; total: number } {
  const where = auditWhere(q);
  const rows = db
    .select()
    .from(auditLog)
    .where(where)
    .orderBy(desc(auditLog.at), desc(auditLog.id))
    .limit(q.limit)
    .offset(q.offset)
    .all();
  const total = db.select({ n: count() }).from(auditLog).where(where).get()?.n ?? 0;
  return { entries: rows.map(auditFromRow), total };
}

export function pruneAudit(sqlite: Database, before: number, limit: number): number {
  return sqlite
    .query<never, { before: number; limit: number }>(
      `delete from audit_log where id in (
         select id from audit_log where at < $before order by at limit $limit)`,
    )
    .run({ before, limit }).changes;
}

export async function* exportAudit(db: Db, batchSize: number): AsyncIterable<AuditEntry[]> {
  let after = 0;
  for (;;) {
    const rows = db
      .select()
      .from(auditLog)
      .where(gt(auditLog.id, after))
      .orderBy(asc(auditLog.id))
      .limit(batchSize)
      .all();
    if (rows.length === 0) return;
    yield rows.map(auditFromRow);
    after = rows[rows.length - 1]?.id ?? after;
  }
}

export function importAudit(sqlite: Database, db: Db, entries: AuditEntry[]): void {
  sqlite
    .transaction(() => {
      for (const e of entries)
        db.insert(auditLog)
          .values({ id: e.id, ...auditToRow(e) })
          .run();
    })
    .immediate();
}
