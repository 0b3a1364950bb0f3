import { join, resolve } from "node:path";
import pkg from "../../../package.json" with { type: "json" };
import { safeUrl } from "../../storage/open.ts";
import { makePrivateDir } from "../../util/private-files.ts";
import { BackupError, messageOf } from "./errors.ts";
import {
  PayloadWriter,
  publish,
  removeQuietly,
  removeSqliteFiles,
  sha256File,
  tempPath,
  type Written,
  writeFrom,
} from "./files.ts";
import { exportPostgres, exportSqliteSnapshot } from "./logical-export.ts";
import { LogicalWriter } from "./logical-format.ts";
import {
  type BackupCounts,
  type BackupFormat,
  type BackupOrigin,
  backupFileName,
  MANIFEST_SUFFIX,
  MANIFEST_VERSION,
  type Manifest,
  type SchemaVersion,
  writeManifest,
} from "./manifest.ts";
import { dumpPostgres, PgToolMismatchError, pgDumpAvailable } from "./pg-dump.ts";
import { inspectSqlite, snapshotSqlite } from "./sqlite-file.ts";
import { differences, verifyPayload } from "./verify.ts";

/** A database that can be backed up (the legacy file backend is one JSON file: copy it). */
export type DatabaseTarget = { type: "sqlite"; path: string } | { type: "postgres"; url: string };

export interface CreateBackupOptions {
  target: DatabaseTarget;
  dir: string;
  compress: boolean;
  /**
   * native: a SQLite copy (VACUUM INTO), or pg_dump for PostgreSQL (a logical
   * export when pg_dump is not installed). logical: NDJSON, restorable into
   * either kind.
   */
  format: "native" | "logical";
  origin: BackupOrigin;
  clock?: () => number;
}

export interface CreatedBackup {
  path: string;
  manifestPath: string;
  manifest: Manifest;
  /** Checks the finished file passed before it got its final name. */
  checks: string[];
  /** Things the operator should know, e.g. a fallback to the logical format. */
  warnings: string[];
  durationMs: number;
}

/** Identifies the database a backup came from (no password), for listings and retention. */
export function sourceOf(target: DatabaseTarget): string {
  return target.type === "sqlite"
    ? `sqlite:${resolve(target.path)}`
    : `postgres:${safeUrl(target.url)}`;
}

interface Made {
  counts: BackupCounts;
  schema: SchemaVersion;
  written: Written;
}

/**
 * Writes one backup into `dir`: the payload under a temporary name, checked
 * in full (as `backup verify` would), then given its final name, then its
 * manifest. A failure at any step leaves nothing but the backups that were
 * there before.
 */
export async function createBackup(options: CreateBackupOptions): Promise<CreatedBackup> {
  const started = performance.now();
  const at = new Date((options.clock ?? Date.now)());
  try {
    makePrivateDir(options.dir);
  } catch (err) {
    throw new BackupError(`cannot create the backup folder ${options.dir}: ${messageOf(err)}`);
  }
  const warnings: string[] = [];
  let format = chooseFormat(options, warnings);
  for (;;) {
    try {
      const result = await attempt(options, format, at);
      return { ...result, warnings, durationMs: Math.round(performance.now() - started) };
    } catch (err) {
      // pg_dump older than the server cannot dump it; the driver can.
      if (err instanceof PgToolMismatchError && format === "pg_dump") {
        warnings.push(`${err.message}; wrote a logical export instead`);
        format = "logical";
        continue;
      }
      throw err;
    }
  }
}

function chooseFormat(options: CreateBackupOptions, warnings: string[]): BackupFormat {
  if (options.format === "logical") return "logical";
  if (options.target.type === "sqlite") return "sqlite";
  if (pgDumpAvailable()) return "pg_dump";
  warnings.push("pg_dump is not installed; wrote a logical export instead");
  return "logical";
}

async function attempt(
  options: CreateBackupOptions,
  format: BackupFormat,
  at: Date,
): Promise<Omit<CreatedBackup, "warnings" | "durationMs">> {
  const { target, dir, compress } = options;
  const name = backupFileName(target.type, format, compress, options.origin, at);
  const path = join(dir, name);
  const tmp = tempPath(dir, name);
  const snapshot = tempPath(dir, `${name}.snapshot`);
  try {
    const made =
      target.type === "sqlite"
        ? await fromSqlite(target.path, snapshot, tmp, format, compress, at)
        : format === "pg_dump"
          ? await fromPgDump(target.url, tmp, compress)
          : await fromPostgresLogical(target.url, tmp, compress, at);
    const manifest: Manifest = {
      manifest: MANIFEST_VERSION,
      file: name,
      kind: target.type,
      format,
      compression: !compress ? "none" : format === "pg_dump" ? "pg_dump" : "gzip",
      origin: options.origin,
      source: sourceOf(target),
      createdAt: at.toISOString(),
      tollgateVersion: pkg.version,
      schema: made.schema,
      counts: made.counts,
      payload: made.written,
    };
    const check = await verifyPayload(tmp, manifest);
    if (!check.ok) {
      throw new BackupError(`the new backup failed its check (${check.reason}); it was not kept`);
    }
    publish(tmp, path);
    const manifestPath = `${path}${MANIFEST_SUFFIX}`;
    try {
      writeManifest(manifestPath, manifest);
    } catch (err) {
      // A payload without its manifest is an incomplete backup: take it back.
      removeQuietly(path);
      throw err;
    }
    return { path, manifestPath, manifest, checks: check.checks };
  } finally {
    removeSqliteFiles(tmp);
    removeSqliteFiles(snapshot);
  }
}

async function fromSqlite(
  live: string,
  snapshot: string,
  tmp: string,
  format: BackupFormat,
  compress: boolean,
  at: Date,
): Promise<Made> {
  snapshotSqlite(live, snapshot);
  const info = inspectSqlite(snapshot);
  if (!info.ok) {
    throw new BackupError(
      `the copy of the database failed its check (${info.reason}); the live database may be damaged`,
    );
  }
  if (format === "sqlite") {
    return {
      counts: info.counts,
      schema: info.schema,
      written: await writeFrom(snapshot, tmp, compress),
    };
  }
  const out = new PayloadWriter(tmp, compress);
  try {
    const w = new LogicalWriter(out);
    await w.header("sqlite", at, info.schema);
    await exportSqliteSnapshot(snapshot, w);
    await w.end();
    const written = await out.finish();
    // The export read the same snapshot the counts came from: they must agree.
    const diff = differences(info.counts, w.counts);
    if (diff.length > 0)
      throw new BackupError(`the export disagrees with the database: ${diff.join(", ")}`);
    return { counts: w.counts, schema: info.schema, written };
  } catch (err) {
    out.abort();
    throw err;
  }
}

async function fromPgDump(url: string, tmp: string, compress: boolean): Promise<Made> {
  const { counts, schema } = await dumpPostgres(url, tmp, compress);
  return { counts, schema, written: await sha256File(tmp) };
}

async function fromPostgresLogical(
  url: string,
  tmp: string,
  compress: boolean,
  at: Date,
): Promise<Made> {
  const out = new PayloadWriter(tmp, compress);
  let writer: LogicalWriter | undefined;
  let schema: SchemaVersion | undefined;
  try {
    await exportPostgres(url, async (s) => {
      schema = s;
      writer = new LogicalWriter(out);
      await writer.header("postgres", at, s);
      return writer;
    });
    if (!writer || !schema) throw new BackupError("the export wrote nothing");
    await writer.end();
    return { counts: writer.counts, schema, written: await out.finish() };
  } catch (err) {
    out.abort();
    throw err;
  }
}
