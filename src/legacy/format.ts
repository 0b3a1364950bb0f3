import { z } from "zod";

// The old gateway's `apikeys.json`: keys in clear, fixed usage windows, and
// sometimes a rolling cache of 5-minute buckets. Parsed once here, for the
// legacy file backend and for the importer alike. Unknown fields are kept
// (`.loose()`), so a file read and written back loses nothing of theirs.

const isoDate = z
  .string()
  .refine((s) => !Number.isNaN(Date.parse(s)), { message: "not a valid date" });

const count = z.number().int().nonnegative().max(Number.MAX_SAFE_INTEGER);

export const legacyUsageWindow = z
  .object({
    window_start: isoDate,
    tokens_used: count,
  })
  .loose();

export const legacyBucket = z
  .object({
    timestamp: z.number().int().nonnegative(),
    tokens: count,
  })
  .loose();

export const legacyRollingCache = z
  .object({
    buckets: z.array(legacyBucket),
    runningTotal: count.optional(),
    lastUpdated: z.string().optional(),
    windowDurationMs: z.number().int().positive().optional(),
    bucketSizeMs: z.number().int().positive().optional(),
  })
  .loose();

export const legacyKey = z
  .object({
    key: z.string().min(1).max(256),
    name: z.string(),
    model: z.string().nullish(),
    token_limit_per_5h: count,
    expiry_date: isoDate,
    created_at: isoDate,
    // Never-used keys may carry an empty string.
    last_used: z.preprocess((v) => (v === "" ? null : v), isoDate.nullish()),
    total_lifetime_tokens: count.default(0),
    usage_windows: z.array(legacyUsageWindow).default([]),
    rolling_window_cache: legacyRollingCache.nullish(),
  })
  .loose();

export const legacyFile = z
  .object({
    keys: z.array(legacyKey),
  })
  .loose();

export type LegacyKey = z.infer<typeof legacyKey>;
export type LegacyFile = z.infer<typeof legacyFile>;
export type LegacyUsageWindow = z.infer<typeof legacyUsageWindow>;
export type LegacyBucket = z.infer<typeof legacyBucket>;
