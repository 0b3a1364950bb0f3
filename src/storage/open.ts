import type { Config } from "../config.ts";
import { isPermanentPgError } from "./postgres/error-codes.ts";
import { retry } from "./retry.ts";
import type { Storage } from "./types.ts";

export class StorageUnreachableError extends Error {}

/** Longest wait between two connection attempts at start-up. */
const MAX_BACKOFF_MS = 10_000;

export interface OpenOptions {
  onRetry?: (attempt: number, waitMs: number, reason: string) => void;
}

/** The storage the configuration names, reachable, migrated and ready. */
export async function openStorage(
  config: Pick<Config, "storage" | "database">,
  options: OpenOptions = {},
): Promise<Storage> {
  const s = config.storage;
  // Each backend is loaded only when chosen: a gateway on SQLite never pays
  // for the PostgreSQL driver's memory, and the other way round.
  if (s.type === "file") {
    const { openFileStorage } = await import("./file/index.ts");
    const storage = openFileStorage(s.path);
    await storage.migrate();
    return storage;
  }
  if (s.type === "sqlite") {
    const { openSqliteStorage } = await import("./sqlite/index.ts");
    const storage = openSqliteStorage(s.path);
    await storage.migrate();
    return storage;
  }
  const { openPostgresStorage } = await import("./postgres/index.ts");
  const storage = openPostgresStorage({ url: s.url, poolMax: config.database.poolMax });
  try {
    await retry(() => storage.ping(), {
      attempts: config.database.connectAttempts,
      baseMs: config.database.connectBackoffMs,
      maxMs: MAX_BACKOFF_MS,
      onRetry: (n, wait, err) => options.onRetry?.(n, wait, reason(err)),
      isPermanent: isPermanentPgError,
    });
    await storage.migrate();
  } catch (err) {
    await storage.close().catch(() => {});
    if (isPermanentPgError(err)) {
      throw new StorageUnreachableError(
        `PostgreSQL at ${safeUrl(s.url)} refused the connection: ${reason(err)}; not retried, fix DATABASE_URL (or create the database)`,
      );
    }
    throw new StorageUnreachableError(
      `could not reach PostgreSQL at ${safeUrl(s.url)} after ${config.database.connectAttempts} attempts: ${reason(err)}`,
    );
  }
  return storage;
}

/** A database URL fit for logs: no password. */
export function safeUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = "***";
    return `${u.hostname}:${u.port || 5432}${u.pathname}`;
  } catch {
    return "(unparseable DATABASE_URL)";
  }
}

function reason(err: unknown): string {
  if (err instanceof Error) {
    const code = (err as { code?: string }).code;
    return code && !err.message.includes(code) ? `${err.message} (${code})` : err.message;
  }
  return String(err);
}

export function describeStorage(config: Pick<Config, "storage">): string {
  const s = config.storage;
  return s.type === "postgres" ? `postgres:${safeUrl(s.url)}` : `${s.type}:${s.path}`;
}
