/**
 * What a PostgreSQL failure means, read from its code: postgres.js's own
 * (CONNECTION_*), the socket's, or PostgreSQL's SQLSTATE
 * (https://www.postgresql.org/docs/current/errcodes-appendix.html). Drizzle
 * wraps the driver's error and keeps it as its `cause`, so the codes are
 * looked for along that chain.
 */

/** The database does not exist (3D000), the password is wrong (28P01), the role may not log in (28000). */
const PERMANENT_CODES = new Set(["3D000", "28P01", "28000"]);

/**
 * A pooled connection the server closed, failing its next query: postgres.js's
 * own CONNECTION_CLOSED, the socket's, and PostgreSQL's connection failures
 * and terminations (08003, 08006; 57P01 and 57P02 at a shutdown, 57P05 after
 * the server's idle_session_timeout). Not ECONNREFUSED or
 * a connect timeout: those say the database itself is out.
 */
const STALE_CONNECTION_CODES = new Set([
  "CONNECTION_CLOSED",
  "ECONNRESET",
  "EPIPE",
  "08003",
  "08006",
  "57P01",
  "57P02",
  "57P05",
]);

function hasCode(err: unknown, codes: ReadonlySet<string>): boolean {
  for (let e = err, depth = 0; e && depth < 3; e = (e as { cause?: unknown }).cause, depth++) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === "string" && codes.has(code)) return true;
  }
  return false;
}

/** An error no retry can mend: the database, the password or the role is wrong. */
export function isPermanentPgError(err: unknown): boolean {
  return hasCode(err, PERMANENT_CODES);
}

/** The connection the query ran on had been closed by the server; another may answer. */
export function isStaleConnection(err: unknown): boolean {
  return hasCode(err, STALE_CONNECTION_CODES);
}

/**
 * Runs a read, again on another pooled connection when the one it got had
 * been closed by the server (a restart, an idle timeout), up to once per
 * connection (up to `poolMax` retries): such a connection fails its next query,
 * while the database answers on the others. Any other failure, a refused
 * connection included, is thrown at once: the database is out, and the
 * caller's outage handling takes over.
 */
export async function readRetryingStale<T>(run: () => Promise<T>, poolMax: number): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await run();
    } catch (err) {
      if (attempt > poolMax || !isStaleConnection(err)) throw err;
    }
  }
}
