import { dirname, join } from "node:path";
import { z } from "zod";

// The only reader of process.env. Bun already loads `.env` from the working
// directory before our code runs, so `.env` values arrive here like any other.

const MiB = 1024 * 1024;

const emptyToUndefined = (v: unknown) => (v === "" ? undefined : v);

const intFrom = (def: number, min = 0) =>
  z.preprocess(emptyToUndefined, z.coerce.number().int().min(min).default(def));

const url = (def: string) =>
  z.preprocess(
    emptyToUndefined,
    z
      .string()
      .url()
      .default(def)
      .transform((s) => s.replace(/\/+$/, "")),
  );

const optionalString = z.preprocess(emptyToUndefined, z.string().optional());

export const envSchema = z.object({
  PORT: intFrom(3000).pipe(z.number().max(65535)),
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
  DATA_FILE: z.preprocess(emptyToUndefined, z.string().default("./data/apikeys.json")),
  JOURNAL_DIR: optionalString,
  MAX_BODY_BYTES: intFrom(32 * MiB, 1),
  UPSTREAM_TIMEOUT_MS: intFrom(600_000, 1),
  STREAM_DRAIN_MS: intFrom(120_000, 0),
  SHUTDOWN_TIMEOUT_MS: intFrom(30_000, 0),
  FLUSH_INTERVAL_MS: intFrom(50, 5),
  LOG_LEVEL: z.preprocess(
    (v) => (v === "" || v === undefined ? undefined : String(v).toLowerCase()),
    z.enum(["debug", "info", "warn", "error"]).default("info"),
  ),
  CORS_ORIGINS: z.preprocess(emptyToUndefined, z.string().default("*")),
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
  maxBodyBytes: number;
  upstreamTimeoutMs: number;
  /** How long an abandoned stream is still read for its usage. */
  streamDrainMs: number;
  shutdownTimeoutMs: number;
  flushIntervalMs: number;
  logLevel: Env["LOG_LEVEL"];
  corsOrigins: string[];
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
    maxBodyBytes: e.MAX_BODY_BYTES,
    upstreamTimeoutMs: e.UPSTREAM_TIMEOUT_MS,
    streamDrainMs: e.STREAM_DRAIN_MS,
    shutdownTimeoutMs: e.SHUTDOWN_TIMEOUT_MS,
    flushIntervalMs: e.FLUSH_INTERVAL_MS,
    logLevel: e.LOG_LEVEL,
    corsOrigins: e.CORS_ORIGINS.split(",")
      .map((s) => s.trim())
      .filter(Boolean),
  };
}

function pickStorage(e: Env): Config["storage"] {
  const type = e.STORAGE_TYPE ?? (e.DATABASE_URL ? "postgres" : "sqlite");
  if (type === "postgres") {
    if (!e.DATABASE_URL || !/^postgres(ql)?:\/\//.test(e.DATABASE_URL)) {
      throw new ConfigError(
        "invalid configuration: DATABASE_URL: STORAGE_TYPE=postgres needs DATABASE_URL=postgres://…",
      );
    }
    return { type, url: e.DATABASE_URL };
  }
  if (type === "file") return { type, path: e.DATA_FILE };
  return { type: "sqlite", path: e.DATABASE_PATH };
}
