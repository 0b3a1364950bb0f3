import { windowState } from "../quota/window.ts";
import type { KeyRecord } from "../storage/types.ts";
import { type Bucket, WEEK_MS, WINDOW_MS } from "../time/buckets.ts";
import type { KeyObject } from "./schemas.ts";

// What the admin API and the CLI show of a key: never its hash, never its
// secret (only the create and rotate answers add that, beside this).

/** An epoch-ms time as ISO 8601, or null for "none". */
export const iso = (ms: number | null) => (ms === null ? null : new Date(ms).toISOString());

export function keyStatus(
  k: KeyRecord,
  now: number,
): "active" | "expired" | "disabled" | "revoked" {
  if (k.revokedAt !== null) return "revoked";
  if (k.disabled) return "disabled";
  if (k.expiresAt !== null && k.expiresAt <= now) return "expired";
  return "active";
}

/** Window usage as the key object carries it. */
export interface WindowUsage {
  used: number;
  /** Start of the oldest counted bucket; null when unknown (listings) or nothing counts. */
  oldestStart: number | null;
}

export function windowUsageOf(
  buckets: Bucket[],
  limit: number,
  now: number,
  spanMs = WINDOW_MS,
): WindowUsage {
  const s = windowState(buckets, limit, now, spanMs);
  return { used: s.used, oldestStart: s.used > 0 ? s.oldestStart : null };
}

const NOTHING: WindowUsage = { used: 0, oldestStart: null };

/** `week` is the key's weekly window usage (ignored when it has no weekly limit). */
export function keyObject(
  k: KeyRecord,
  usage: WindowUsage,
  now: number,
  week: WindowUsage = NOTHING,
): KeyObject {
  return {
    id: k.id,
    name: k.name,
    prefix: k.keyPrefix,
    token_limit_per_5h: k.tokenLimit,
    model: k.model,
    expires_at: iso(k.expiresAt),
    max_concurrent: k.maxConcurrent,
    token_limit_per_week: k.weeklyLimit,
    allowed_models: k.allowedModels,
    disabled: k.disabled,
    created_at: new Date(k.createdAt).toISOString(),
    last_used: iso(k.lastUsedAt),
    total_lifetime_tokens: k.totalTokens,
    total_requests: k.totalRequests,
    status: keyStatus(k, now),
    revoked_at: iso(k.revokedAt),
    usage: {
      tokens_used_in_current_window: usage.used,
      remaining_tokens: Math.max(0, k.tokenLimit - usage.used),
      window_resets_at: usage.oldestStart === null ? null : iso(usage.oldestStart + WINDOW_MS),
    },
    weekly_usage:
      k.weeklyLimit === null
        ? null
        : {
            tokens_used_in_current_window: week.used,
            remaining_tokens: Math.max(0, k.weeklyLimit - week.used),
            window_resets_at: week.oldestStart === null ? null : iso(week.oldestStart + WEEK_MS),
          },
  };
}
