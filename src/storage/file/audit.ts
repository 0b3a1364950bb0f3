import type { AuditEntry, AuditQuery, NewAuditEntry } from "../types.ts";
import type { FileAuditEntry } from "./schema.ts";

// The audit log kept in the legacy file, under `tollgate_audit` (the old
// gateway ignores it).

export function toFileAudit(e: NewAuditEntry, id: number): FileAuditEntry {
  return {
    id,
    at: e.at,
    actor_kind: e.actor.kind,
    actor: e.actor.name,
    action: e.action,
    key_id: e.keyId,
    key_prefix: e.keyPrefix,
    key_name: e.keyName,
    changes: e.changes,
  };
}

export function fromFileAudit(e: FileAuditEntry): AuditEntry {
  return {
    id: e.id,
    at: e.at,
    actor: { kind: e.actor_kind, name: e.actor },
    action: e.action,
    keyId: e.key_id,
    keyPrefix: e.key_prefix,
    keyName: e.key_name,
    changes: e.changes,
  };
}

/** Newest first, as the database backends answer. */
export function queryAudit(
  log: FileAuditEntry[],
  q: AuditQuery,
): { entries: AuditEntry[]; total: number } {
  const matching = log
    .filter((e) => q.keyId === undefined || e.key_id === q.keyId)
    .filter((e) => q.since === undefined || e.at >= q.since)
    .sort((a, b) => b.at - a.at || b.id - a.id);
  return {
    entries: matching.slice(q.offset, q.offset + q.limit).map(fromFileAudit),
    total: matching.length,
  };
}
