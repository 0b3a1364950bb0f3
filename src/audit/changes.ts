import type { KeyRecord } from "../storage/types.ts";

// What an audit entry says changed on a key: the fields an operator sets,
// under the admin API's names, before and after. Never the hash or secret:
// only the display prefix, which is shown in every listing anyway.

export type FieldChanges = Record<string, { before: unknown; after: unknown }>;

const iso = (ms: number | null) => (ms === null ? null : new Date(ms).toISOString());

/** The audited fields of a key; null for "no key" (before a create). */
export function auditedFields(k: KeyRecord | null): Record<string, unknown> {
  if (!k) return {};
  return {
    name: k.name,
    prefix: k.keyPrefix,
    token_limit_per_5h: k.tokenLimit,
    model: k.model,
    expires_at: iso(k.expiresAt),
    max_concurrent: k.maxConcurrent,
    token_limit_per_week: k.weeklyLimit,
    allowed_models: k.allowedModels,
    disabled: k.disabled,
    revoked_at: iso(k.revokedAt),
  };
}

/** The fields that differ between two versions of a key (either may be null). */
export function keyChanges(before: KeyRecord | null, after: KeyRecord | null): FieldChanges {
  const a = auditedFields(before);
  const b = auditedFields(after);
  const out: FieldChanges = {};
  for (const field of new Set([...Object.keys(a), ...Object.keys(b)])) {
    const was = field in a ? a[field] : null;
    const now = field in b ? b[field] : null;
    // Lists (allowed_models) compare by content.
    if (JSON.stringify(was) !== JSON.stringify(now)) out[field] = { before: was, after: now };
  }
  return out;
}

/** An update that only switched a key off or on is named for it. */
export function updateAction(changes: FieldChanges): string {
  const fields = Object.keys(changes);
  if (fields.length === 1 && fields[0] === "disabled") {
    return changes.disabled?.after === true ? "key.disable" : "key.enable";
  }
  return "key.update";
}
