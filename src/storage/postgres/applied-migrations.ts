import type postgres from "postgres";
import type { AppliedMigrations } from "../types.ts";

/** Drizzle's migrations table: how many rows and the newest `created_at` (none when it is absent). */
export async function appliedMigrations(
  q: postgres.Sql | postgres.TransactionSql,
): Promise<AppliedMigrations> {
  const [exists] = await q<{ t: string | null }[]>`
    select to_regclass('drizzle.__drizzle_migrations')::text as t`;
  if (!exists?.t) return { applied: 0, latestAt: null };
  const [row] = await q<{ n: string; latest: string | null }[]>`
    select count(*) as n, max(created_at) as latest from drizzle.__drizzle_migrations`;
  return {
    applied: Number(row?.n ?? 0),
    latestAt: row?.latest === null || row?.latest === undefined ? null : Number(row.latest),
  };
}
