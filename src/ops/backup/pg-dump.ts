import { readSnapshot } from "../../storage/postgres/snapshot.ts";
import { BackupError, messageOf } from "./errors.ts";
import { headOf } from "./files.ts";
import type { BackupCounts, SchemaVersion } from "./manifest.ts";
import { schemaVersion } from "./schema-version.ts";

// PostgreSQL's own tools: pg_dump writes the custom-format archive (compressed
// by pg_dump itself), pg_restore reads it back. The archive is never replayed
// as a whole: verify and restore take the table data out of it, table by table,
// as COPY text, so verification needs no server and restore runs in one
// transaction of our own.

const PGDMP = Buffer.from("PGDMP", "latin1");

/** The data tables, in the order a restore loads them (keys before their usage). */
export const DATA_TABLES = ["api_keys", "usage_buckets", "usage_checkpoints"] as const;
export type DataTable = (typeof DATA_TABLES)[number];

/** pg_dump or pg_restore is older than the server: the logical format still works. */
export class PgToolMismatchError extends BackupError {}

export function isPgDumpArchive(path: string): boolean {
  return headOf(path, PGDMP.length).equals(PGDMP);
}

/** Where a tool is on the PATH as it is now (Bun.which alone reads the PATH the process started with). */
function which(name: string): string | null {
  return Bun.which(name, { PATH: process.env.PATH ?? "" });
}

function tool(name: "pg_dump" | "pg_restore"): string {
  const path = which(name);
  if (!path) {
    throw new BackupError(
      `${name} is not installed (install the PostgreSQL client tools, e.g. the postgresql-client package)`,
    );
  }
  return path;
}

export function pgDumpAvailable(): boolean {
  return which("pg_dump") !== null;
}

async function run(argv: string[], env: Record<string, string> = {}): Promise<string> {
  const proc = Bun.spawn(argv, {
    env: { ...process.env, ...env },
    stdin: "ignore",
    stdout: "pipe",
    stderr: "pipe",
  });
  const [out, err, code] = await Promise.all([
    new Response(proc.stdout).text(),
    new Response(proc.stderr).text(),
    proc.exited,
  ]);
  if (code !== 0) throw toolError(argv[0] ?? "tool", err);
  return out;
}

function toolError(argv0: string, stderr: string): BackupError {
  const name = argv0.split("/").pop() ?? argv0;
  const lines = stderr.trim().split("\n").filter(Boolean);
  const said = lines.slice(-2).join("; ") || "no message";
  return /version mismatch/i.test(stderr)
    ? new PgToolMismatchError(`${name} failed: ${said}`)
    : new BackupError(`${name} failed: ${said}`);
}

/**
 * pg_dump of the database into `target` (custom format). The counts and the
 * schema version are read in a transaction whose snapshot pg_dump then uses,
 * so they describe exactly what the archive holds, however busy the database.
 */
export async function dumpPostgres(
  url: string,
  target: string,
  compress: boolean,
): Promise<{ counts: BackupCounts; schema: SchemaVersion }> {
  const pgDump = tool("pg_dump");
  const { dbname, env } = libpqTarget(url);
  try {
    return await readSnapshot(url, "tollgate-backup", async (snap) => {
      const snapshot = await snap.exportId();
      const counts = await snap.counts();
      const schema = schemaVersion("postgres", await snap.appliedMigrations());
      await run(
        [
          pgDump,
          "--format=custom",
          `--compress=${compress ? 6 : 0}`,
          `--snapshot=${snapshot}`,
          "--no-owner",
          "--no-privileges",
          `--file=${target}`,
          `--dbname=${dbname}`,
        ],
        env,
      );
      return { counts, schema };
    });
  } catch (err) {
    if (err instanceof BackupError) throw err;
    throw new BackupError(`cannot back up PostgreSQL: ${messageOf(err)}`);
  }
}

/** The URL without its password, which goes to libpq tools through the environment instead (not the process list). */
function libpqTarget(url: string): { dbname: string; env: Record<string, string> } {
  const u = new URL(url);
  const env: Record<string, string> = {};
  if (u.password) env.PGPASSWORD = decodeURIComponent(u.password);
  u.password = "";
  // postgres.js accepts `postgres:`; libpq wants `postgresql:` or `postgres:`, both fine.
  return { dbname: u.toString(), env };
}

/** One table's COPY header in an archive. */
export interface CopyHeader {
  schema: string;
  table: string;
  columns: string[];
}

const COPY_LINE = /^COPY ([a-z_][a-z0-9_]*)\.([a-z_][a-z0-9_]*) \(([a-z0-9_, ]*)\) FROM stdin;$/;

/**
 * The rows of the named tables in an archive, as COPY text lines in batches,
 * read from one pg_restore as it decompresses, in the archive's order.
 * Rejects when pg_restore fails (a damaged archive) or a named table has no
 * complete data block.
 */
export async function* archiveRows(
  file: string,
  tables: Array<{ schema: string; table: string }>,
  batchLines = 2000,
): AsyncGenerator<{ header: CopyHeader; lines: string[] }> {
  const argv = [tool("pg_restore"), "--data-only"];
  for (const schema of new Set(tables.map((t) => t.schema))) argv.push(`--schema=${schema}`);
  for (const t of tables) argv.push(`--table=${t.table}`);
  const proc = Bun.spawn([...argv, "--file=-", file], {
    stdin: "ignore",
    stdout: "pipe",
    stderr: "pipe",
  });
  const stderr = new Response(proc.stderr).text();
  const wanted = new Set(tables.map((t) => `${t.schema}.${t.table}`));
  const complete = new Set<string>();
  let header: CopyHeader | undefined;
  let batch: string[] = [];
  let rest = "";
  const decoder = new TextDecoder();
  try {
    for await (const chunk of proc.stdout) {
      const parts = (rest + decoder.decode(chunk, { stream: true })).split("\n");
      rest = parts.pop() ?? "";
      for (const line of parts) {
        if (!header) {
          const m = COPY_LINE.exec(line);
          if (m && wanted.has(`${m[1]}.${m[2]}`)) {
            header = {
              schema: m[1] ?? "",
              table: m[2] ?? "",
              columns: (m[3] ?? "").split(", ").filter(Boolean),
            };
          }
          continue;
        }
        if (line === "\\.") {
          if (batch.length > 0) yield { header, lines: batch };
          batch = [];
          complete.add(`${header.schema}.${header.table}`);
          header = undefined;
          continue;
        }
        batch.push(line);
        if (batch.length >= batchLines) {
          yield { header, lines: batch };
          batch = [];
        }
      }
    }
    const code = await proc.exited;
    if (code !== 0) throw toolError("pg_restore", await stderr);
    const missing = [...wanted].filter((t) => !complete.has(t));
    if (missing.length > 0) {
      throw new BackupError(`the archive holds no complete data for ${missing.join(", ")}`);
    }
  } finally {
    if (proc.exitCode === null) proc.kill();
  }
}

export type DumpInspection =
  | { ok: true; counts: BackupCounts; schema: SchemaVersion }
  | { ok: false; reason: string };

/** Reads every data block of the archive (so every compressed byte) and counts what it holds. */
export async function inspectDump(file: string): Promise<DumpInspection> {
  if (!isPgDumpArchive(file)) return { ok: false, reason: "the payload is not a pg_dump archive" };
  tool("pg_restore");
  const counts: BackupCounts = {
    keys: 0,
    usageBuckets: 0,
    lifetimeTokens: 0,
    lifetimeRequests: 0,
    bucketTokens: 0,
    checkpoints: 0,
  };
  let applied = 0;
  let latest: number | null = null;
  const tables = [
    ...DATA_TABLES.map((table) => ({ schema: "public", table })),
    { schema: "drizzle", table: "__drizzle_migrations" },
  ];
  try {
    for await (const { header, lines } of archiveRows(file, tables)) {
      const col = (name: string) => header.columns.indexOf(name);
      const sum = (index: number) => {
        let total = 0;
        for (const line of lines) total += Number(line.split("\t")[index] ?? 0);
        return total;
      };
      if (header.table === "api_keys") {
        counts.keys += lines.length;
        counts.lifetimeTokens += sum(col("total_tokens"));
        counts.lifetimeRequests += sum(col("total_requests"));
      } else if (header.table === "usage_buckets") {
        counts.usageBuckets += lines.length;
        counts.bucketTokens += sum(col("tokens"));
      } else if (header.table === "usage_checkpoints") {
        counts.checkpoints += lines.length;
      } else {
        applied += lines.length;
        for (const line of lines) {
          const v = Number(line.split("\t")[col("created_at")]);
          if (Number.isFinite(v)) latest = Math.max(latest ?? v, v);
        }
      }
    }
    return { ok: true, counts, schema: schemaVersion("postgres", { applied, latestAt: latest }) };
  } catch (err) {
    if (err instanceof BackupError && err.message.includes("is not installed")) throw err;
    return { ok: false, reason: messageOf(err) };
  }
}
