import type { AuditEntry, NewAuditEntry } from "./types.ts";

// Between audit entries and their table rows, the same in both SQL dialects.

export interface AuditRow {
  id: number;
  at: number;
  actorKind: string;
  actor: string;
  action: string;
  keyId: string | null;
  keyPrefix: string | null;
  keyName: string | null;
  changes: string | null;
}

export function auditToRow(e: NewAuditEntry): Omit<AuditRow, "id"> {
  return {
    at: e.at,
    actorKind: e.actor.kind,
    actor: e.actor.name,
    action: e.action,
    keyId: e.keyId,
    keyPrefix: e.keyPrefix,
    keyName: e.keyName,
    changes: e.changes === null ? null : JSON.stringify(e.changes),
  };
}

export function auditFromRow(r: AuditRow): AuditEntry {
  return {
    id: Number(r.id),
    at: Number(r.at),
    actor: { kind: r.actorKind as AuditEntry["actor"]["kind"], name: r.actor },
    action: r.action,
    keyId: r.keyId,
    keyPrefix: r.keyPrefix,
    keyName: r.keyName,
    changes: r.changes === null ? null : (JSON.parse(r.changes) as Record<string, unknown>),
  };
}
