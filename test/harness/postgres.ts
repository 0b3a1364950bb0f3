import { randomBytes } from "node:crypto";
import postgres from "postgres";
import { openPostgresStorage } from "../../src/storage/postgres/index.ts";
import { fallingBack } from "./require-postgres.ts";

/**
 * A fresh PostgreSQL database per test: on the server named by
 * TEST_DATABASE_URL when it is set (CI sets it), otherwise in PGlite, an
 * in-process PostgreSQL reached over a local socket, so the postgres.js code
 * path is the same either way. Under REQUIRE_POSTGRES=1 (CI) there is no
 * PGlite: without TEST_DATABASE_URL the suite fails.
 */
export interface TestDatabase {
  url: string;
  drop(): Promise<void>;
}

export interface TestPostgres {
  kind: "server" | "pglite";
  /** Where it runs, for the banner (no password). */
  where: string;
  /** Whether several processes can connect at once (a real server can; PGlite cannot). */
  shared: boolean;
  create(): Promise<TestDatabase>;
}

let cached: Promise<TestPostgres> | undefined;

export function testPostgres(): Promise<TestPostgres> {
  const url = process.env.TEST_DATABASE_URL;
  if (!url) fallingBack("the PostgreSQL tests", "no TEST_DATABASE_URL, so they run on PGlite");
  cached ??= (url ? serverTarget(url) : pgliteTarget()).then((t) => {
    // Said loudly, so nobody mistakes a PGlite run for a server run.
    process.stderr.write(
      `\n[postgres tests] running against ${t.kind === "server" ? "PostgreSQL server" : "PGlite (no TEST_DATABASE_URL)"}: ${t.where}\n`,
    );
    return t;
  });
  return cached;
}

async function serverTarget(url: string): Promise<TestPostgres> {
  const admin = postgres(url, { max: 2, onnotice: () => {} });
  await admin`select 1`;
  const base = new URL(url);
  return {
    kind: "server",
    where: `${base.hostname}:${base.port || 5432}`,
    shared: true,
    async create() {
      const name = `tollgate_test_${randomBytes(6).toString("hex")}`;
      await admin.unsafe(`create database ${name}`);
      const u = new URL(url);
      u.pathname = `/${name}`;
      return {
        url: u.toString(),
        async drop() {
          await admin.unsafe(`drop database if exists ${name} with (force)`);
        },
      };
    },
  };
}

async function pgliteTarget(): Promise<TestPostgres> {
  const { PGlite } = await import("@electric-sql/pglite");
  const { PGLiteSocketServer } = await import("@electric-sql/pglite-socket");
  // initdb and the migrations are slow (seconds): do them once and start
  // every test from a copy of the result.
  const template = await (async () => {
    const db = new PGlite();
    await db.waitReady;
    const server = new PGLiteSocketServer({ db, port: 0, host: "127.0.0.1" });
    await server.start();
    const storage = openPostgresStorage({
      url: `postgres://postgres@${server.getServerConn()}/postgres`,
      poolMax: 1,
    });
    await storage.migrate();
    await storage.close();
    await server.stop();
    const dump = await db.dumpDataDir("none");
    await db.close();
    return dump;
  })();
  return {
    kind: "pglite",
    where: "in-process, one per test",
    shared: false,
    async create() {
      const db = new PGlite({ loadDataDir: template });
      await db.waitReady;
      // Queries of every connection are queued onto the one database: room
      // for a gateway's whole pool (DATABASE_POOL_MAX, 10), a CLI command and
      // a test's own connection at once. With 4, a test holding one made a
      // gateway's CLI commands fail with ECONNRESET.
      const server = new PGLiteSocketServer({ db, port: 0, host: "127.0.0.1", maxConnections: 32 });
      await server.start();
      return {
        url: `postgres://postgres@${server.getServerConn()}/postgres`,
        async drop() {
          await server.stop();
          await db.close();
        },
      };
    },
  };
}
