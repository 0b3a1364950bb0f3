import {
  bigint,
  bigserial,
  boolean,
  index,
  integer,
  jsonb,
  pgTable,
  primaryKey,
  text,
} from "drizzle-orm/pg-core";

// Token counts and times are bigint (int8). Times are epoch milliseconds, as
// in the SQLite schema, so window arithmetic is the same in both dialects.
// `mode: "number"` maps int8 to JS numbers, exact up to 2^53.

const int8 = (name: string) => bigint(name, { mode: "number" });

export const apiKeys = pgTable(
  "api_keys",
  {
    id: text("id").primaryKey(),
    keyHash: text("key_hash").notNull().unique(),
    keyPrefix: text("key_prefix").notNull(),
    name: text("name").notNull(),
    tokenLimit: int8("token_limit").notNull(),
    model: text("model"),
    expiresAt: int8("expires_at"),
    maxConcurrent: integer("max_concurrent"),
    weeklyLimit: int8("token_limit_week"),
    /** JSON array of model names or glob patterns; null = any model. */
    allowedModels: jsonb("allowed_models").$type<string[]>(),
    disabled: boolean("disabled").notNull().default(false),
    createdAt: int8("created_at").notNull(),
    updatedAt: int8("updated_at").notNull(),
    lastUsedAt: int8("last_used_at"),
    totalTokens: int8("total_tokens").notNull().default(0),
    totalRequests: int8("total_requests").notNull().default(0),
    /** Epoch ms the key was revoked; its hash is then a marker no secret hashes to. */
    revokedAt: int8("revoked_at"),
  },
  (t) => [index("api_keys_name_idx").on(t.name), index("api_keys_prefix_idx").on(t.keyPrefix)],
);

export const usageBuckets = pgTable(
  "usage_buckets",
  {
    keyId: text("key_id")
      .notNull()
      .references(() => apiKeys.id, { onDelete: "cascade" }),
    bucketStart: int8("bucket_start").notNull(),
    tokens: int8("tokens").notNull().default(0),
    requests: int8("requests").notNull().default(0),
  },
  // bucket_start alone: pruning and the usage summed over every key read by
  // time, which the primary key (key first) cannot serve without a full scan.
  (t) => [
    primaryKey({ columns: [t.keyId, t.bucketStart] }),
    index("usage_buckets_bucket_start_idx").on(t.bucketStart),
  ],
);

/** Highest journal sequence number applied per gateway instance. */
export const usageCheckpoints = pgTable("usage_checkpoints", {
  instanceId: text("instance_id").primaryKey(),
  lastSeq: int8("last_seq").notNull(),
  updatedAt: int8("updated_at").notNull(),
});

/**
 * Every change to keys and to the data, newest last. Append-only: nothing in
 * Tollgate edits or deletes an entry, except that purging a key blanks its
 * name here and retention drops entries past AUDIT_RETENTION_DAYS. Never a
 * secret or a hash.
 */
export const auditLog = pgTable(
  "audit_log",
  {
    id: bigserial("id", { mode: "number" }).primaryKey(),
    at: int8("at").notNull(),
    actorKind: text("actor_kind").notNull(),
    actor: text("actor").notNull(),
    action: text("action").notNull(),
    keyId: text("key_id"),
    keyPrefix: text("key_prefix"),
    keyName: text("key_name"),
    /** JSON: { field: { before, after } }, or details of a data operation. */
    changes: text("changes"),
  },
  (t) => [index("audit_log_at_idx").on(t.at), index("audit_log_key_id_idx").on(t.keyId, t.at)],
);

/**
 * Usage per key, model and hour: raw tokens by kind, the weighted units
 * charged, requests and spend (micro-units of the models file's currency).
 * History for reading; admission reads `usage_buckets`.
 */
export const modelUsage = pgTable(
  "model_usage",
  {
    keyId: text("key_id")
      .notNull()
      .references(() => apiKeys.id, { onDelete: "cascade" }),
    model: text("model").notNull(),
    bucketStart: int8("bucket_start").notNull(),
    inputTokens: int8("input_tokens").notNull().default(0),
    outputTokens: int8("output_tokens").notNull().default(0),
    cacheReadTokens: int8("cache_read_tokens").notNull().default(0),
    cacheWriteTokens: int8("cache_write_tokens").notNull().default(0),
    units: int8("units").notNull().default(0),
    requests: int8("requests").notNull().default(0),
    spendMicros: int8("spend_micros").notNull().default(0),
  },
  (t) => [
    primaryKey({ columns: [t.keyId, t.model, t.bucketStart] }),
    index("model_usage_bucket_start_idx").on(t.bucketStart),
  ],
);
