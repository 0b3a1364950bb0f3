import { sql } from "drizzle-orm";
import { index, integer, primaryKey, sqliteTable, text } from "drizzle-orm/sqlite-core";

// SQLite INTEGER is 64-bit; `mode: "number"` keeps counts as JS numbers, exact
// up to 2^53, far beyond any token total a key will reach.

export const apiKeys = sqliteTable(
  "api_keys",
  {
    id: text("id").primaryKey(),
    keyHash: text("key_hash").notNull().unique(),
    keyPrefix: text("key_prefix").notNull(),
    name: text("name").notNull(),
    tokenLimit: integer("token_limit", { mode: "number" }).notNull(),
    model: text("model"),
    expiresAt: integer("expires_at", { mode: "number" }),
    maxConcurrent: integer("max_concurrent", { mode: "number" }),
    weeklyLimit: integer("token_limit_week", { mode: "number" }),
    /** JSON array of model names or glob patterns; null = any model. */
    allowedModels: text("allowed_models", { mode: "json" }).$type<string[]>(),
    disabled: integer("disabled", { mode: "boolean" }).notNull().default(false),
    createdAt: integer("created_at", { mode: "number" }).notNull(),
    updatedAt: integer("updated_at", { mode: "number" }).notNull(),
    lastUsedAt: integer("last_used_at", { mode: "number" }),
    totalTokens: integer("total_tokens", { mode: "number" }).notNull().default(0),
    totalRequests: integer("total_requests", { mode: "number" }).notNull().default(0),
    /** Epoch ms the key was revoked; its hash is then a marker no secret hashes to. */
    revokedAt: integer("revoked_at", { mode: "number" }),
  },
  (t) => [index("api_keys_name_idx").on(t.name), index("api_keys_prefix_idx").on(t.keyPrefix)],
);

export const usageBuckets = sqliteTable(
  "usage_buckets",
  {
    keyId: text("key_id")
      .notNull()
      .references(() => apiKeys.id, { onDelete: "cascade" }),
    bucketStart: integer("bucket_start", { mode: "number" }).notNull(),
    tokens: integer("tokens", { mode: "number" }).notNull().default(0),
    requests: integer("requests", { mode: "number" }).notNull().default(0),
  },
  // bucket_start alone: pruning and the usage summed over every key read by
  // time, which the primary key (key first) cannot serve without a full scan.
  (t) => [
    primaryKey({ columns: [t.keyId, t.bucketStart] }),
    index("usage_buckets_bucket_start_idx").on(t.bucketStart),
  ],
);

/** Highest journal sequence number applied per gateway instance. */
export const usageCheckpoints = sqliteTable("usage_checkpoints", {
  instanceId: text("instance_id").primaryKey(),
  lastSeq: integer("last_seq", { mode: "number" }).notNull(),
  updatedAt: integer("updated_at", { mode: "number" }).notNull().default(sql`(unixepoch() * 1000)`),
});

/**
 * Every change to keys and to the data, newest last. Append-only: nothing in
 * Tollgate edits or deletes an entry, except that purging a key blanks its
 * name here and retention drops entries past AUDIT_RETENTION_DAYS. Never a
 * secret or a hash.
 */
export const auditLog = sqliteTable(
  "audit_log",
  {
    id: integer("id", { mode: "number" }).primaryKey({ autoIncrement: true }),
    at: integer("at", { mode: "number" }).notNull(),
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
export const modelUsage = sqliteTable(
  "model_usage",
  {
    keyId: text("key_id")
      .notNull()
      .references(() => apiKeys.id, { onDelete: "cascade" }),
    model: text("model").notNull(),
    bucketStart: integer("bucket_start", { mode: "number" }).notNull(),
    inputTokens: integer("input_tokens", { mode: "number" }).notNull().default(0),
    outputTokens: integer("output_tokens", { mode: "number" }).notNull().default(0),
    cacheReadTokens: integer("cache_read_tokens", { mode: "number" }).notNull().default(0),
    cacheWriteTokens: integer("cache_write_tokens", { mode: "number" }).notNull().default(0),
    units: integer("units", { mode: "number" }).notNull().default(0),
    requests: integer("requests", { mode: "number" }).notNull().default(0),
    spendMicros: integer("spend_micros", { mode: "number" }).notNull().default(0),
  },
  (t) => [
    primaryKey({ columns: [t.keyId, t.model, t.bucketStart] }),
    index("model_usage_bucket_start_idx").on(t.bucketStart),
  ],
);
