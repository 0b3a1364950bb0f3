/**
 * The benchmark's own PostgreSQL database: created fresh on the server named
 * by BENCH_PG_URL (used only as the admin connection) and dropped at the end,
 * so a run never touches anyone else's data.
 */
import { randomBytes } from "node:crypto";
import postgres from "postgres";

export interface BenchDatabase {
  name: string;
  /** Connection URL of the new database (same user and server as the admin URL). */
  url: string;
  drop(): Promise<void>;
}

/** The server could not be reached or refused us: the PostgreSQL part is skipped. */
export class PgUnreachableError extends Error {}

const CONNECT_TIMEOUT_SEC = 3;

export async function createBenchDatabase(adminUrl: string): Promise<BenchDatabase> {
  const admin = postgres(adminUrl, {
    max: 1,
    connect_timeout: CONNECT_TIMEOUT_SEC,
    onnotice: () => {},
  });
  try {
    await admin`select 1`;
  } catch (error) {
    await admin.end({ timeout: 1 }).catch(() => {});
    const message = error instanceof Error ? error.message : String(error);
    throw new PgUnreachableError(message);
  }
  // Random, so parallel runs (and leftovers of a killed one) never collide.
  const name = `tollgate_bench_${randomBytes(6).toString("hex")}`;
  await admin.unsafe(`create database ${name}`);
  const url = new URL(adminUrl);
  url.pathname = `/${name}`;
  let dropped = false;
  return {
    name,
    url: url.toString(),
    async drop() {
      if (dropped) return;
      dropped = true;
      try {
        // with (force): a gateway that failed to stop must not keep the database alive.
        await admin.unsafe(`drop database if exists ${name} with (force)`);
      } finally {
        await admin.end({ timeout: 2 });
      }
    },
  };
}
