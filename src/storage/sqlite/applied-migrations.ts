import type { Database } from "bun:sqlite";
import type { AppliedMigrations } from "../types.ts";

/** Drizzle's migrations table: how many rows and the newest `created_at` (none when it is absent). */
export function appliedMigrations(db: Database): AppliedMigrations {
  const table = db
    .query<{ n: number }, []>(
      "SELECT count(*) AS n FROM sqlite_master WHERE type = 'table' AND name = '__drizzle_migrations'",
    )
    .get();
  if (!table?.n) return { applied: 0, latestAt: null };
  const row = db
    .query<{ n: number; latest: number | null }, []>(
      "SELECT count(*) AS n, max(created_at) AS latest FROM __drizzle_migrations",
    )
    .get();
  return { applied: row?.n ?? 0, latestAt: row?.latest ?? null };
}
