import { z } from "zod";
import type { AuditEntry } from "../storage/types.ts";
import type { AdminDeps } from "./operations.ts";
import { instant, queryInt } from "./schemas.ts";

// The audit log as the admin API and `tollgate audit` show it: who changed
// what and when, newest first. The entries never hold a secret or a hash.

export const auditQuery = z.object({
  key: z
    .string()
    .trim()
    .min(1)
    .max(200)
    .optional()
    .meta({ description: "Only entries about this key id" }),
  since: instant.optional().meta({ description: "Only entries at or after this time" }),
  limit: queryInt(1, 500, 50).meta({ description: "Page size, 1 to 500 (default 50)" }),
  offset: queryInt(0, Number.MAX_SAFE_INTEGER, 0).meta({ description: "Entries to skip" }),
});
export type AuditQueryInput = z.output<typeof auditQuery>;

export const auditEntryObject = z
  .object({
    id: z.number().int(),
    at: z.iso.datetime().meta({ description: "When the change was made" }),
    actor: z.object({
      kind: z.enum(["cli", "api", "dashboard"]).meta({
        description: "cli: a command on the host; api: the ADMIN_API_KEY; dashboard: a session",
      }),
      name: z.string().meta({
        description: "cli: system user@host; api and dashboard: the client's address",
      }),
    }),
    action: z.string().meta({
      description:
        "key.create, key.update, key.disable, key.enable, key.rotate, key.revoke, key.purge, data.migrate, data.restore, data.copy",
    }),
    key_id: z.string().nullable(),
    key_prefix: z.string().nullable(),
    key_name: z
      .string()
      .nullable()
      .meta({ description: "The key's name then; null once the key is purged" }),
    changes: z.record(z.string(), z.unknown()).nullable().meta({
      description: "Key changes: { field: { before, after } }; data operations: what they moved",
    }),
  })
  .meta({ id: "AuditEntry" });
export type AuditEntryObject = z.infer<typeof auditEntryObject>;

export const auditPage = z
  .object({
    total: z.number().int(),
    limit: z.number().int(),
    offset: z.number().int(),
    entries: z.array(auditEntryObject),
  })
  .meta({ id: "AuditPage" });
export type AuditPage = z.infer<typeof auditPage>;

export function auditEntryView(e: AuditEntry): AuditEntryObject {
  return {
    id: e.id,
    at: new Date(e.at).toISOString(),
    actor: e.actor,
    action: e.action,
    key_id: e.keyId,
    key_prefix: e.keyPrefix,
    key_name: e.keyName,
    changes: e.changes,
  };
}

export async function listAudit(deps: AdminDeps, q: AuditQueryInput): Promise<AuditPage> {
  const page = await deps.storage.listAudit({
    keyId: q.key,
    since: q.since,
    limit: q.limit,
    offset: q.offset,
  });
  return {
    total: page.total,
    limit: q.limit,
    offset: q.offset,
    entries: page.entries.map(auditEntryView),
  };
}
