import { dirname, join } from "node:path";
import { Cron } from "croner";
import { z } from "zod";
import { checkProxyEntry } from "./admin/client-address.ts";
import type { ModelTable } from "./models/cost.ts";
import { loadModelTable, ModelsFileError } from "./models/load.ts";
import { checkExtraPath } from "./proxy/endpoints.ts";
import { isNeverForwarded } from "./proxy/header-policy.ts";

// The only reader of process.env. Bun already loads `.env` from the working
// directory before our code runs, so `.env` values arrive here like any other.

const MiB = 1024 * 1024;

const emptyToUndefined = (v: unknown) => (v === "" ? undefined : v);

const wholeNumber = (v: unknown) =>
  typeof v === "string" && /^\s*-?\d+\s*$/.test(v) ? Number(v) : v;

/** A whole number; anything else says so rather than "expected number, received NaN". */
const intFrom = (def: number, min = 0) =>
  z.preprocess(
    (v) => wholeNumber(emptyToUndefined(v)),
    z
      .number({ error: `must be a number (a whole number, e.g. ${def})` })
      .int({ error: `must be a number (a whole number, e.g. ${def})` })
      .min(min, { error: `must be at least ${min}` })
      .default(def),
  );

/** Why an upstream base URL is unfit, or null: http(s) only, nothing a request would leak or lose. */
export function upstreamUrlProblem(text: string): string | null {
  let u: URL;
  try {
    u = new URL(text);
  } catch {
    return `not a URL ("${text}"); expected e.g. https://api.example.com/v1`;
  }
  if (u.protocol !== "http:" && u.protocol !== "https:") {
    return `must start with http:// or https:// (got ${u.protocol}//)`;
  }
  if (u.username || u.password) {
    return "must not hold credentials (user:password@); the upstream key goes in UPSTREAM_API_KEY";
  }
  if (u.search || text.includes("?")) return "must not have a query (?…)";
  if (u.hash || text.includes("#")) return "must not have a fragment (#…)";
  return null;
}

const url = (def: string) =>
  z.preprocess(
    emptyToUndefined,
    z
      .string()
      .default(def)
      .superRefine((s, ctx) => {
        const problem = upstreamUrlProblem(s);
        if (problem) ctx.addIssue({ code: "custom", message: problem });
      })
      .transform((s) => s.replace(/\/+$/, "")),
  );

/** A comma-separated list, each entry checked by `check` (null = fine, else why not). */
const listOf = (check: (entry: string) => string | null, lower = false) =>
  z.preprocess(
    emptyToUndefined,
    z
      .string()
      .optional()
      .transform((v, ctx) => {
        const entries = (v ?? "")
          .split(",")
          .map((s) => (lower ? s.trim().toLowerCase() : s.trim()))
          .filter(Boolean);
        for (const entry of entries) {
          const problem = check(entry);
          if (problem) {
            ctx.addIssue({ code: "custom", message: problem });
            return z.NEVER;
          }
        }
        return entries;
      }),
  );

const checkHeaderName = (name: string): string | null => {
  if (!/^[a-z0-9!#$%&'*+.^_`|~-]+$/.test(name)) return `"${name}" is not a header name`;
  if (isNeverForwarded(name))
    return `"${name}" is never forwarded (credentials, cookies, framing and forwarding headers)`;
  return null;
};

const checkBetaName = (name: string): string | null =>
  /^[A-Za-z0-9._-]+$/.test(name) ? null : `"${name}" is not an anthropic-beta value`;

const optionalString = z.preprocess(emptyToUndefined, z.string().optional());

const boolFrom = (def: boolean) =>
  z.preprocess(
    (v) => (v === "" || v === undefined ? undefined : String(v).trim().toLowerCase()),
    z
      .enum(["true", "false", "1", "0", "yes", "no", "on", "off"], {
        error: "expected true or false",
      })
      .default(def ? "true" : "false")
      .transform((v) => ["true", "1", "yes", "on"].includes(v)),
  );

/** A cron expression croner accepts (5 fields, or 6 with seconds). */
const cronSchedule = z.preprocess(
  emptyToUndefined,
  z
    .string()
    .default("0 2 * * *")
    .superRefine((expr, ctx) => {
      try {
        new Cron(expr, { paused: true }).stop();
      } catch (err) {
        ctx.addIssue({
          code: "custom",
          message: `not a valid cron expression ("${expr}"): ${(err as Error).message}`,
        });
      }
    }),
);

export const envSchema = z.object({
  PORT: intFrom(3000).pipe(z.number().max(65535, { error: "must be a port number up to 65535" })),
  HOST: z.preprocess(emptyToUndefined, z.string().default("0.0.0.0")),
  UPSTREAM_API_KEY: optionalString,
  ZAI_API_KEY: optionalString,
  UPSTREAM_OPENAI_URL: url("https://api.z.ai/api/coding/paas/v4"),
  UPSTREAM_ANTHROPIC_URL: url("https://api.z.ai/api/anthropic"),
  DEFAULT_MODEL: z.preprocess(emptyToUndefined, z.string().min(1).default("glm-4.7")),
  DATABASE_URL: optionalString,
  DATABASE_PATH: z.preprocess(emptyToUndefined, z.string().default("./data/tollgate.db")),
  STORAGE_TYPE: z.preprocess(emptyToUndefined, z.enum(["sqlite", "postgres", "file"]).optional()),
  DATABASE_POOL_MAX: intFrom(10, 1),
  DATABASE_CONNECT_ATTEMPTS: intFrom(10, 1),
  DATABASE_CONNECT_BACKOFF_MS: intFrom(250, 1),
  USAGE_SYNC_MS: intFrom(25, 1),
  UNKNOWN_KEYS_DURING_OUTAGE: z.preprocess(
    (v) => (v === "" || v === undefined ? undefined : String(v).toLowerCase()),
    z.enum(["reject", "allow"]).default("reject"),
  ),
  DATA_FILE: z.preprocess(emptyToUndefined, z.string().default("./data/apikeys.json")),
  JOURNAL_DIR: optionalString,
  MAX_BODY_BYTES: intFrom(32 * MiB, 1),
  BODY_TIMEOUT_MS: intFrom(60_000, 1),
  // Bun counts its idle timeout in whole seconds, at most 255.
  IDLE_TIMEOUT_SECONDS: intFrom(60, 0).pipe(
    z.number().max(255, "must be at most 255 (seconds; 0 turns it off)"),
  ),
  UPSTREAM_TIMEOUT_MS: intFrom(600_000, 1),
  UPSTREAM_IDLE_TIMEOUT_MS: intFrom(600_000, 1),
  STREAM_DRAIN_MS: intFrom(120_000, 0),
  SHUTDOWN_TIMEOUT_MS: intFrom(30_000, 0),
  FLUSH_INTERVAL_MS: intFrom(50, 5),
  METRICS_TOKEN: optionalString,
  ADMIN_API_KEY: z.preprocess(
    emptyToUndefined,
    z
      .string()
      .trim()
      .min(16, "must be at least 16 characters (e.g. openssl rand -hex 24)")
      // It travels as `Authorization: Bearer <key>`, which cannot hold a space.
      .regex(/^\S+$/, "must not contain spaces or other whitespace (it is sent as a Bearer token)")
      .optional(),
  ),
  TRUSTED_PROXIES: listOf(checkProxyEntry),
  EXTRA_PATHS: listOf(checkExtraPath),
  EXTRA_REQUEST_HEADERS: listOf(checkHeaderName, true),
  ALLOWED_ANTHROPIC_BETAS: listOf(checkBetaName),
  USAGE_RETENTION_DAYS: intFrom(30, 1),
  AUDIT_RETENTION_DAYS: z.preprocess(emptyToUndefined, z.coerce.number().int().min(1).optional()),
  DEFAULT_KEY_CONCURRENCY: z.preprocess(
    emptyToUndefined,
    z.coerce.number().int().min(1).optional(),
  ),
  UPSTREAM_MAX_CONCURRENCY: z.preprocess(
    emptyToUndefined,
    z.coerce.number().int().min(1).optional(),
  ),
  UPSTREAM_QUEUE_TIMEOUT_MS: intFrom(60_000, 1),
  MODELS_FILE: z.preprocess(emptyToUndefined, z.string().optional()),
  UPSTREAM_PLAN_5H: z.preprocess(emptyToUndefined, z.coerce.number().int().min(1).optional()),
  UPSTREAM_PLAN_WEEKLY: z.preprocess(emptyToUndefined, z.coerce.number().int().min(1).optional()),
  OUTPUT_CAP_POLICY: z.preprocess(
    (v) => (v === "" || v === undefined ? undefined : String(v).trim().toLowerCase()),
    z.enum(["refuse", "clamp"]).default("refuse"),
  ),
  DEFAULT_OUTPUT_RESERVATION: intFrom(4096, 1),
  LOG_LEVEL: z.preprocess(
    (v) => (v === "" || v === undefined ? undefined : String(v).toLowerCase()),
    z.enum(["debug", "info", "warn", "error"]).default("info"),
  ),
  CORS_ORIGINS: z.preprocess(emptyToUndefined, z.string().default("*")),
  BACKUP_ENABLED: boolFrom(false),
  BACKUP_SCHEDULE: cronSchedule,
  BACKUP_DIR: z.preprocess(emptyToUndefined, z.string().default("./data/backups")),
  BACKUP_RETAIN: intFrom(10, 0),
  BACKUP_COMPRESS: boolFrom(true),
});

export type Env = z.infer<typeof envSchema>;

export interface Config {
  port: number;
  host: string;
  upstreamApiKey: string | undefined;
  upstreamOpenaiUrl: string;
  upstreamAnthropicUrl: string;
  defaultModel: string;
  storage:
    | { type: "sqlite"; path: string }
    | { type: "postgres"; url: string }
    | { type: "file"; path: string };
  /** The legacy `apikeys.json` (file storage, and the default for `migrate`). */
  dataFile: string;
  journalDir: string;
  database: {
    poolMax: number;
    connectAttempts: number;
    connectBackoffMs: number;
  };
  /**
   * How old another instance's flushed usage may be when admission reads it
   * (PostgreSQL). With the flush interval this bounds cross-instance staleness.
   */
  usageSyncMs: number;
  /** While the database is out, keys this instance has never seen: refused (503) or let through. */
  unknownKeysDuringOutage: "reject" | "allow";
  maxBodyBytes: number;
  /** Longest time a client may take to send its whole request body (408 after). */
  bodyTimeoutMs: number;
  /** Idle keep-alive connections are closed after this many seconds (0: never). */
  idleTimeoutSeconds: number;
  upstreamTimeoutMs: number;
  /** Longest silence tolerated once an upstream response has started (stream or body). */
  upstreamIdleTimeoutMs: number;
  /** How long an abandoned stream is still read for its usage. */
  streamDrainMs: number;
  shutdownTimeoutMs: number;
  flushIntervalMs: number;
  logLevel: Env["LOG_LEVEL"];
  /** When set, /metrics wants it as a bearer token. */
  metricsToken: string | undefined;
  corsOrigins: string[];
  /** When set, enables `/admin/*` and the dashboard; unset = the admin surface is off. */
  adminApiKey: string | undefined;
  /** 5-minute usage buckets older than this many days are pruned in the background. */
  usageRetentionDays: number;
  /** Audit entries older than this many days are pruned; undefined = kept for ever. */
  auditRetentionDays: number | undefined;
  /**
   * Reverse proxies (addresses and CIDR ranges) whose X-Forwarded-For,
   * -Proto and -Host the admin API believes; empty = none.
   */
  trustedProxies: string[];
  /** Paths forwarded besides the built-in endpoints: unmetered, shared by every key. */
  extraPaths: string[];
  /** Request header names forwarded besides the built-in allowlist (lower case). */
  extraRequestHeaders: string[];
  /** When set, the only `anthropic-beta` values forwarded; null = all. */
  allowedAnthropicBetas: string[] | null;
  /** Requests in flight per key (on this instance) for keys that set none; null = unlimited. */
  defaultKeyConcurrency: number | null;
  /** Requests in flight upstream at once (on this instance), queued fairly between keys; null = unlimited. */
  upstreamMaxConcurrency: number | null;
  /** Longest wait in that queue before a 429. */
  upstreamQueueTimeoutMs: number;
  /**
   * MODELS_FILE, read and validated at load: weights, peak multipliers and
   * prices per model; every weight 1 when unset.
   */
  models: ModelTable;
  /** What the upstream plan delivers, in the units quotas are counted in; null = not declared. */
  plan: { fiveHour: number | null; weekly: number | null };
  /**
   * A request whose output cap does not fit what remains of its key's quota:
   * refused with a 429 ("refuse"), or forwarded with the cap lowered ("clamp").
   */
  outputCapPolicy: "refuse" | "clamp";
  /** Output tokens reserved for a request that names no cap. */
  defaultOutputReservation: number;
  backup: {
    /** Scheduled backups in the server. */
    enabled: boolean;
    /** Cron expression, validated with croner at load. */
    schedule: string;
    dir: string;
    /** Scheduled backups kept; 0 keeps all. */
    retain: number;
    compress: boolean;
  };
}

export class ConfigError extends Error {}

export function loadConfig(env: Record<string, string | undefined> = process.env): Config {
  const parsed = envSchema.safeParse(env);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const name = issue?.path.join(".") ?? "environment";
    throw new ConfigError(`invalid configuration: ${name}: ${issue?.message ?? "invalid value"}`);
  }
  const e = parsed.data;
  const storage = pickStorage(e);
  const sqliteDir = storage.type === "sqlite" ? dirname(storage.path) : dirname(e.DATABASE_PATH);
  return {
    port: e.PORT,
    host: e.HOST,
    upstreamApiKey: e.UPSTREAM_API_KEY ?? e.ZAI_API_KEY,
    upstreamOpenaiUrl: e.UPSTREAM_OPENAI_URL,
    upstreamAnthropicUrl: e.UPSTREAM_ANTHROPIC_URL,
    defaultModel: e.DEFAULT_MODEL,
    storage,
    dataFile: e.DATA_FILE,
    journalDir: e.JOURNAL_DIR ?? join(sqliteDir, "journal"),
    database: {
      poolMax: e.DATABASE_POOL_MAX,
      connectAttempts: e.DATABASE_CONNECT_ATTEMPTS,
      connectBackoffMs: e.DATABASE_CONNECT_BACKOFF_MS,
    },
    usageSyncMs: e.USAGE_SYNC_MS,
    unknownKeysDuringOutage: e.UNKNOWN_KEYS_DURING_OUTAGE,
    maxBodyBytes: e.MAX_BODY_BYTES,
    bodyTimeoutMs: e.BODY_TIMEOUT_MS,
    idleTimeoutSeconds: e.IDLE_TIMEOUT_SECONDS,
    upstreamTimeoutMs: e.UPSTREAM_TIMEOUT_MS,
    upstreamIdleTimeoutMs: e.UPSTREAM_IDLE_TIMEOUT_MS,
    streamDrainMs: e.STREAM_DRAIN_MS,
    shutdownTimeoutMs: e.SHUTDOWN_TIMEOUT_MS,
    flushIntervalMs: e.FLUSH_INTERVAL_MS,
    logLevel: e.LOG_LEVEL,
    metricsToken: e.METRICS_TOKEN,
    corsOrigins: e.CORS_ORIGINS.split(",")
      .map((s) => s.trim())
      .filter(Boolean),
    adminApiKey: e.ADMIN_API_KEY,
    usageRetentionDays: e.USAGE_RETENTION_DAYS,
    auditRetentionDays: e.AUDIT_RETENTION_DAYS,
    trustedProxies: e.TRUSTED_PROXIES,
    extraPaths: e.EXTRA_PATHS,
    extraRequestHeaders: e.EXTRA_REQUEST_HEADERS,
    allowedAnthropicBetas: e.ALLOWED_ANTHROPIC_BETAS.length > 0 ? e.ALLOWED_ANTHROPIC_BETAS : null,
    defaultKeyConcurrency: e.DEFAULT_KEY_CONCURRENCY ?? null,
    upstreamMaxConcurrency: e.UPSTREAM_MAX_CONCURRENCY ?? null,
    upstreamQueueTimeoutMs: e.UPSTREAM_QUEUE_TIMEOUT_MS,
    models: modelTableOf(e.MODELS_FILE),
    plan: { fiveHour: e.UPSTREAM_PLAN_5H ?? null, weekly: e.UPSTREAM_PLAN_WEEKLY ?? null },
    outputCapPolicy: e.OUTPUT_CAP_POLICY,
    defaultOutputReservation: e.DEFAULT_OUTPUT_RESERVATION,
    backup: {
      enabled: e.BACKUP_ENABLED,
      schedule: e.BACKUP_SCHEDULE,
      dir: e.BACKUP_DIR,
      retain: e.BACKUP_RETAIN,
      compress: e.BACKUP_COMPRESS,
    },
  };
}

function modelTableOf(path: string | undefined): ModelTable {
  try {
    return loadModelTable(path);
  } catch (err) {
    if (err instanceof ModelsFileError)
      throw new ConfigError(`invalid configuration: ${err.message}`);
    throw err;
  }
}

function pickStorage(e: Env): Config["storage"] {
  const type = e.STORAGE_TYPE ?? (e.DATABASE_URL ? "postgres" : "sqlite");
  if (type === "postgres") {
    if (!e.DATABASE_URL) {
      throw new ConfigError(
        "invalid configuration: DATABASE_URL: STORAGE_TYPE=postgres needs DATABASE_URL=postgres://…",
      );
    }
    if (!/^postgres(ql)?:\/\//i.test(e.DATABASE_URL)) {
      const scheme = /^([a-z][a-z0-9+.-]*):/i.exec(e.DATABASE_URL)?.[1];
      throw new ConfigError(
        `invalid configuration: DATABASE_URL: ${scheme ? `the scheme ${scheme}:// is not supported` : "not a database URL"}; ` +
          "Tollgate speaks PostgreSQL (postgres://user:password@host:5432/name), or SQLite when DATABASE_URL is unset (DATABASE_PATH)",
      );
    }
    return { type, url: e.DATABASE_URL };
  }
  if (type === "file") return { type, path: e.DATA_FILE };
  return { type: "sqlite", path: e.DATABASE_PATH };
}
