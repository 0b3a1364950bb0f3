import postgres from "postgres";
import type { SchemaVersion } from "./manifest.ts";
import { schemaVersion } from "./schema-version.ts";

// Backup and restore talk to PostgreSQL on connections of their own, one at a
// time, named so that they are told apart from gateway connections
// ("tollgate") in pg_stat_activity.

export type Sql = postgres.Sql;
export type Tx = postgres.TransactionSql;
type Query = Sql | Tx;

export function connect(url: string, applicationName: string): Sql {
  return postgres(url, {
    max: 1,
    onnotice: () => {},
    connection: { application_name: applicationName },
  });
}

export async function pgSchema(q: Query): Promise<SchemaVersion> {
  const [exists] = await q<{ t: string | null }[]>`
    select to_regclass('drizzle.__drizzle_migrations')::text as t`;
  if (!exists?.t) return schemaVersion("postgres", 0, null);
  const [row] = await q<{ n: string; latest: string | null }[]>`
    select count(*) as n, max(created_at) as latest from drizzle.__drizzle_migrations`;
  return schemaVersion(
    "postgres",
    Number(row?.n ?? 0),
    row?.latest === null || row?.latest === undefined ? null : Number(row.latest),
  );
}

/** Connections of running gateways (and other Tollgate commands) to this database, other than ours. */
export async function otherTollgateSessions(q: Query): Promise<number> {
  const [row] = await q<{ n: string }[]>`
    select count(*) as n from pg_stat_activity
    where datname = current_database() and application_name = 'tollgate' and pid <> pg_backend_pid()`;
  return Number(row?.n ?? 0);
}

/** The URL without its password, which goes to libpq tools through the environment instead (not the process list). */
export function libpqTarget(url: string): { dbname: string; env: Record<string, string> } {
  const u = new URL(url);
  const env: Record<string, string> = {};
  if (u.password) env.PGPASSWORD = decodeURIComponent(u.password);
  u.password = "";
  // postgres.js accepts `postgres:`; libpq wants `postgresql:` or `postgres:`, both fine.
  return { dbname: u.toString(), env };
}
