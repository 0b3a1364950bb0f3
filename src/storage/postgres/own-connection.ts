import postgres from "postgres";

// Backup and restore talk to PostgreSQL on connections of their own, one at a
// time, named so that they are told apart from gateway connections
// ("tollgate") in pg_stat_activity.

export type Tx = postgres.TransactionSql;

/** A one-connection client of its own, named `applicationName`; the caller ends it. */
export function openOwnConnection(url: string, applicationName: string): postgres.Sql {
  return postgres(url, {
    max: 1,
    onnotice: () => {},
    connection: { application_name: applicationName },
  });
}

/** Runs `use` on a connection of its own, ended afterwards whatever happens. */
export async function withOwnConnection<T>(
  url: string,
  applicationName: string,
  use: (sql: postgres.Sql) => Promise<T>,
): Promise<T> {
  const sql = openOwnConnection(url, applicationName);
  try {
    return await use(sql);
  } finally {
    await sql.end({ timeout: 5 });
  }
}

/** Connections of running gateways (and other Tollgate commands) to this database, other than ours. */
export function otherTollgateSessions(url: string, applicationName: string): Promise<number> {
  return withOwnConnection(url, applicationName, async (sql) => {
    const [row] = await sql<{ n: string }[]>`
      select count(*) as n from pg_stat_activity
      where datname = current_database() and application_name = 'tollgate' and pid <> pg_backend_pid()`;
    return Number(row?.n ?? 0);
  });
}
