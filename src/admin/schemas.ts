import { z } from "zod";
import { ADMIN_ERROR_CODES } from "./errors.ts";
import { STEPS } from "./usage-range.ts";

// One set of zod schemas for the admin API: they parse requests (and the
// CLI's usage flags), type the operations' answers, and generate the OpenAPI
// document, so the three cannot drift apart. Plain zod: `.meta({ id })` names
// an OpenAPI component without pulling the HTTP layer into the CLI.

const iso = (description: string) => z.iso.datetime().meta({ description });
const nullableIso = (description: string) => z.iso.datetime().nullable().meta({ description });

/**
 * A moment given as an ISO date (`2027-01-31`, midnight UTC) or date-time
 * (`2027-01-31T18:00:00Z`, an offset, or none = UTC), as epoch ms.
 */
export const instant = z
  .string()
  .trim()
  .regex(
    /^\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d{1,9})?)?(?:Z|[+-]\d{2}:?\d{2})?)?$/i,
    "expected an ISO date (2027-01-31) or date-time (2027-01-31T18:00:00Z)",
  )
  .transform((v, ctx) => {
    const utc = /(?:Z|[+-]\d{2}:?\d{2})$/i.test(v) || !/[T ]/i.test(v) ? v : `${v}Z`;
    const ms = Date.parse(utc.replace(" ", "T"));
    // Date.parse rolls 2027-02-30 over into March: a day the month lacks is refused.
    const [y, m, d] = v.slice(0, 10).split("-").map(Number) as [number, number, number];
    if (Number.isNaN(ms) || d > new Date(Date.UTC(y, m, 0)).getUTCDate()) {
      ctx.addIssue({ code: "custom", message: `not a valid date: ${v}` });
      return z.NEVER;
    }
    return ms;
  })
  .meta({ description: "ISO 8601 date or date-time; without an offset it is UTC" });

const name = z
  .string()
  .trim()
  .min(1, "must not be empty")
  .max(200, "must be at most 200 characters");
/** zod's message for a field that is absent, else `message`. */
const required = (message: string) => (issue: { input?: unknown }) =>
  issue.input === undefined ? "is required" : message;

const tokenLimit = z
  .number({ error: required("must be a number of tokens") })
  .int("must be a whole number of tokens")
  .min(0, "must not be negative")
  .max(Number.MAX_SAFE_INTEGER, "is too large")
  .meta({ description: "Token quota per rolling 5 hours" });
const model = z
  .string()
  .trim()
  .min(1, "must not be empty (use null to remove the override)")
  .max(200, "must be at most 200 characters")
  .nullable()
  .meta({ description: "Model forced on every request made with the key; null = none" });
const expiresAt = instant.nullable().meta({ description: "Expiry; null = never" });
const maxConcurrent = z
  .number({ error: required("must be a whole number of requests, or null") })
  .int("must be a whole number of requests")
  .min(1, "must be at least 1 (use null for no limit of its own)")
  .max(2_147_483_647, "is too large")
  .nullable()
  .meta({
    description:
      "Requests the key may have in flight at once, per gateway instance; null = none of its own (DEFAULT_KEY_CONCURRENCY applies)",
  });

const weeklyLimit = z
  .number({ error: required("must be a number of tokens, or null") })
  .int("must be a whole number of tokens")
  .min(0, "must not be negative (use null for no weekly limit)")
  .max(Number.MAX_SAFE_INTEGER, "is too large")
  .nullable()
  .meta({ description: "Token quota per rolling 7 days; null = no weekly limit" });

const allowedModels = z
  .array(
    z
      .string({ error: "must be model names" })
      .trim()
      .min(1, "must not contain an empty name")
      .max(200, "must hold names of at most 200 characters"),
    { error: required("must be a list of model names or glob patterns, or null") },
  )
  .max(100, "must hold at most 100 models")
  .nullable()
  .meta({
    description:
      "Model names or glob patterns (e.g. glm-4.*) the key may use; null or [] = any model. Checked on the model sent upstream, after the key's model override",
  });

export const createKeyBody = z
  .strictObject({
    name,
    token_limit_per_5h: tokenLimit,
    model: model.optional(),
    expires_at: expiresAt.optional(),
    max_concurrent: maxConcurrent.optional(),
    token_limit_per_week: weeklyLimit.optional(),
    allowed_models: allowedModels.optional(),
  })
  .meta({ id: "CreateKey" });

export const updateKeyBody = z
  .strictObject({
    name: name.optional(),
    token_limit_per_5h: tokenLimit.optional(),
    model: model.optional(),
    expires_at: expiresAt.optional(),
    max_concurrent: maxConcurrent.optional(),
    token_limit_per_week: weeklyLimit.optional(),
    allowed_models: allowedModels.optional(),
    disabled: z.boolean({ error: required("must be true or false") }).optional(),
  })
  .refine((p) => Object.values(p).some((v) => v !== undefined), {
    message:
      "give at least one of name, token_limit_per_5h, model, expires_at, max_concurrent, token_limit_per_week, allowed_models, disabled",
  })
  .meta({ id: "UpdateKey" });

/** A whole number from a query string, within bounds. */
export const queryInt = (min: number, max: number, fallback: number) =>
  z
    .string()
    .regex(/^\d+$/, "must be a whole number")
    .transform(Number)
    .pipe(z.number().min(min, `must be at least ${min}`).max(max, `must be at most ${max}`))
    .optional()
    .transform((v) => v ?? fallback);

export const keyStatus = z.enum(["active", "expired", "disabled", "revoked"]);

export const listKeysQuery = z.object({
  limit: queryInt(1, 500, 50).meta({ description: "Page size, 1 to 500 (default 50)" }),
  offset: queryInt(0, Number.MAX_SAFE_INTEGER, 0).meta({ description: "Keys to skip" }),
  status: z
    .enum(
      ["all", "active", "expired", "disabled", "revoked"],
      "must be all, active, expired, disabled or revoked",
    )
    .default("all")
    .meta({ description: "Revoked keys show only with `revoked`, or with include_revoked" }),
  include_revoked: z
    .enum(["true", "false"], "must be true or false")
    .optional()
    .transform((v) => v === "true")
    .meta({ description: "With status all: revoked keys too (hidden by default)" }),
  model: z.string().trim().min(1).max(200).optional().meta({
    description: "Only keys whose model override is exactly this",
  }),
  search: z.string().trim().min(1).max(200).optional().meta({
    description: "Name contains it, or the display prefix starts with it (case-insensitive)",
  }),
});
export type ListKeysQuery = z.output<typeof listKeysQuery>;

export const usageQuery = z.object({
  from: instant.optional().meta({ description: "Start (default: `to` minus 24 hours)" }),
  to: instant
    .optional()
    .meta({ description: "End, exclusive (default: the end of the current step)" }),
  step: z.enum(STEPS, `must be one of ${STEPS.join(", ")}`).default("1h"),
});
export type UsageQuery = z.output<typeof usageQuery>;

export const keyIdParam = z.object({
  id: z
    .string()
    .min(1)
    .max(200)
    .meta({ param: { name: "id", in: "path" }, example: "key_0123456789abcdef" }),
});

export const keyUsageState = z.object({
  tokens_used_in_current_window: z.number().int(),
  remaining_tokens: z.number().int(),
  window_resets_at: nullableIso(
    "When the oldest counted bucket ages out; null when nothing is counted (and in listings, which read totals only)",
  ),
});

export const keyObject = z
  .object({
    id: z.string(),
    name: z.string(),
    prefix: z.string().meta({ description: "First characters of the key, for display" }),
    token_limit_per_5h: z.number().int(),
    model: z.string().nullable(),
    expires_at: nullableIso("Expiry; null = never"),
    max_concurrent: z.number().int().nullable().meta({
      description:
        "Requests the key may have in flight at once, per gateway instance; null = none of its own (DEFAULT_KEY_CONCURRENCY applies)",
    }),
    token_limit_per_week: z
      .number()
      .int()
      .nullable()
      .meta({ description: "Token quota per rolling 7 days; null = no weekly limit" }),
    allowed_models: z
      .array(z.string())
      .nullable()
      .meta({ description: "Model names or glob patterns the key may use; null = any model" }),
    disabled: z.boolean(),
    created_at: iso("Creation time"),
    last_used: nullableIso("Last request; null = never used"),
    total_lifetime_tokens: z.number().int(),
    total_requests: z.number().int(),
    status: keyStatus,
    revoked_at: nullableIso("When the key was revoked; null = not revoked"),
    usage: keyUsageState,
    weekly_usage: keyUsageState
      .nullable()
      .meta({ description: "The rolling 7-day window; null when the key has no weekly limit" }),
  })
  .meta({ id: "Key" });
export type KeyObject = z.infer<typeof keyObject>;

export const issuedKeyObject = keyObject
  .extend({ key: z.string().meta({ description: "The secret: shown in this answer only" }) })
  .meta({ id: "IssuedKey" });
export type IssuedKeyObject = z.infer<typeof issuedKeyObject>;

export const keyList = z
  .object({
    total: z.number().int(),
    limit: z.number().int(),
    offset: z.number().int(),
    keys: z.array(keyObject),
  })
  .meta({ id: "KeyList" });
export type KeyList = z.infer<typeof keyList>;

export const revokedKey = z
  .object({ id: z.string(), revoked: z.literal(true), key: keyObject })
  .meta({ id: "Revoked" });
export type RevokedKey = z.infer<typeof revokedKey>;

export const purgedKey = z
  .object({ id: z.string(), purged: z.literal(true) })
  .meta({ id: "Purged" });
export type PurgedKey = z.infer<typeof purgedKey>;

const point = z.object({
  start: iso("Start of the step"),
  tokens: z.number().int(),
  requests: z.number().int(),
});
const seriesFields = {
  from: iso("Start, floored to the step"),
  to: iso("End (exclusive), floored to the step"),
  step_seconds: z.number().int(),
  total_tokens: z.number().int(),
  total_requests: z.number().int(),
  points: z
    .array(point)
    .meta({ description: "Every step in [from, to), oldest first, zero-filled" }),
};
export const modelUsageView = z
  .object({
    currency: z.string().nullable().meta({
      description:
        "The models file's currency when it sets prices (spend is in it); null = no prices",
    }),
    models: z
      .array(
        z.object({
          model: z
            .string()
            .meta({ description: '"unknown" for usage recorded before per-model history' }),
          input_tokens: z
            .number()
            .int()
            .meta({ description: "Input tokens not read from the cache" }),
          output_tokens: z
            .number()
            .int()
            .meta({ description: "Output tokens; estimates count here" }),
          cache_read_tokens: z.number().int(),
          cache_write_tokens: z.number().int(),
          tokens: z.number().int().meta({ description: "Raw tokens of every kind" }),
          units: z.number().int().meta({
            description:
              "Weighted units charged to quotas (MODELS_FILE); equal to tokens without it",
          }),
          requests: z.number().int(),
          spend: z.number().nullable().meta({ description: "In `currency`; null without prices" }),
          spend_micros: z
            .number()
            .int()
            .meta({ description: "Spend in millionths of `currency`, exact" }),
        }),
      )
      .meta({
        description: "Per model, by name; hourly history, so a range is taken to whole hours",
      }),
  })
  .meta({ id: "ModelUsage" });

export const keyUsageSeries = z
  .object({ key_id: z.string(), ...seriesFields, by_model: modelUsageView })
  .meta({ id: "KeyUsageSeries" });
export type KeyUsageSeries = z.infer<typeof keyUsageSeries>;

export const holderUsageSeries = z
  .object({
    key: z.string().meta({ description: "The key, masked" }),
    ...seriesFields,
    by_model: modelUsageView,
  })
  .meta({ id: "HolderUsageSeries" });
export type HolderUsageSeries = z.infer<typeof holderUsageSeries>;

const planWindow = z
  .object({
    window: z.enum(["5h", "weekly"]),
    capacity: z.number().int().nullable().meta({
      description:
        "What the upstream plan delivers in the window (UPSTREAM_PLAN_5H, UPSTREAM_PLAN_WEEKLY), in the units quotas count; null = not declared",
    }),
    allowed: z.number().int().meta({
      description:
        "Sum of what the active keys may use in the window; for the week, each key's weekly limit where it has one, else its 5-hour limit over 33.6 back-to-back windows",
    }),
    used: z.number().int().meta({ description: "Used across all keys in the window ending now" }),
    allowed_ratio: z.number().nullable().meta({
      description:
        "allowed / capacity; above 1 the plan is oversubscribed. null without a capacity",
    }),
    used_ratio: z
      .number()
      .nullable()
      .meta({ description: "used / capacity; null without a capacity" }),
  })
  .meta({ id: "PlanWindow" });

export const usageTotals = z
  .object({
    ...seriesFields,
    keys_total: z.number().int(),
    keys_active: z.number().int(),
    keys_with_usage: z.number().int(),
    by_key: z
      .array(
        z.object({
          id: z.string(),
          name: z.string(),
          prefix: z.string(),
          tokens: z.number().int(),
          requests: z.number().int(),
        }),
      )
      .meta({ description: "The 50 keys that used the most tokens in the range" }),
    plan: z.array(planWindow).meta({
      description:
        "The upstream plan against the keys handed out, now (whatever the range): the 5-hour window, then the weekly one",
    }),
    by_model: modelUsageView.meta({ description: "Every key's usage in the range, per model" }),
  })
  .meta({ id: "UsageTotals" });
export type UsageTotals = z.infer<typeof usageTotals>;

export const signInBody = z
  .strictObject({
    admin_key: z
      .string({ error: required("must be a string") })
      .min(1, "must not be empty")
      .max(1024),
  })
  .meta({ id: "SignIn" });
export const sessionObject = z
  .object({
    csrf_token: z.string().meta({ description: "Send as X-CSRF-Token on every non-GET request" }),
    expires_at: iso("When the session ends"),
  })
  .meta({ id: "Session" });

export const errorObject = z
  .object({
    error: z.object({
      code: z.enum(ADMIN_ERROR_CODES),
      message: z.string(),
    }),
  })
  .meta({ id: "Error" });
