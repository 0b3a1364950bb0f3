import { and, asc, count, desc, eq, gt, gte, type SQL, sql } from "drizzle-orm";
import { auditFromRow, auditToRow } from "../audit-rows.ts";
import type { AuditEntry, AuditQuery, NewAuditEntry } from "../types.ts";
import type { Db, Sql } from "./database.ts";
import { auditLog } from "./schema.ts";

// The audit log in PostgreSQL: appended to, read newest first, pruned by age.

function auditWhere(q: Pick<AuditQuery, "keyId" | "since">): SQL | undefined {
  return and(
    q.keyId === undefined ? undefined : eq(auditLog.keyId, q.keyId),
    q.since === undefined ? undefined : gte(auditLog.at, q.since),
  );
}

export async function appendAudit(db: Db, entry: NewAuditEntry): Promise<void> {
  await db.insert(auditLog).values(auditToRow(entry));
}

export async function listAudit(
  db: Db,
  q: AuditQuery,
): Promise<{ entries: AuditEntry[]; total: number }> {
  const where = auditWhere(q);
  const rows = await db
    .select()
    .from(auditLog)
    .where(where)
    .orderBy(desc(auditLog.at), desc(auditLog.id))
    .limit(q.limit)
    .offset(q.offset);
  const [n] = await db.select({ n: count() }).from(auditLog).where(where);
  return { entries: rows.map(auditFromRow), total: n?.n ?? 0 };
}

export async function pruneAudit(client: Sql, before: number, limit: number): Promise<number> {
  const r = await client`
    delete from audit_log where id in (
      select id from audit_log where at < ${before} order by at limit ${limit})`;
  return r.count;
}

export async function* exportAudit(db: Db, batchSize: number): AsyncIterable<AuditEntry[]> {
  let after = 0;
  for (;;) {
    const rows = await db
      .select()
      .from(auditLog)
      .where(gt(auditLog.id, after))
      .orderBy(asc(auditLog.id))
      .limit(batchSize);
    if (rows.length === 0) return;
    yield rows.map(auditFromRow);
    after = rows[rows.length - 1]?.id ?? after;
  }
}

/** Entries keep their ids; the sequence then moves past them so later entries follow. */
export async function importAudit(db: Db, entries: AuditEntry[]): Promise<void> {
  await db.transaction(async (tx) => {
    for (let i = 0; i < entries.length; i += 500) {
      const chunk = entries.slice(i, i + 500).map((e) => ({ id: e.id, ...auditToRow(e) }));
      if (chunk.length > 0) await tx.insert(auditLog).values(chunk);
    }
    await tx.execute(
      sql`select setval(pg_get_serial_sequence('audit_log', 'id'), coalesce((select max(id) from audit_log), 0) + 1, false)`,
    );
  });
}
