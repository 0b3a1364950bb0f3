import { statSync } from "node:fs";
import { tmpdir } from "node:os";
import { BackupError, messageOf } from "./errors.ts";
import { expandTo, removeSqliteFiles, sha256File, tempPath } from "./files.ts";
import { addRow, emptyCounts, LogicalFormatError, readLogical } from "./logical-format.ts";
import {
  type BackupCounts,
  backupPaths,
  type Manifest,
  readManifest,
  type SchemaVersion,
} from "./manifest.ts";
import { inspectDump, isPgDumpArchive } from "./pg-dump.ts";
import { inspectSqlite, isSqliteFile } from "./sqlite-file.ts";

/** Why a backup cannot be trusted. */
export type DamageCode =
  | "missing"
  | "manifest"
  | "unknown-format"
  | "empty"
  | "truncated"
  | "size"
  | "checksum"
  | "wrong-kind"
  | "content";

export type PayloadCheck =
  | { ok: true; checks: string[] }
  | { ok: false; code: DamageCode; reason: string };

export type Verification =
  | { ok: true; manifest: Manifest; payload: string; manifestPath: string; checks: string[] }
  | {
      ok: false;
      code: DamageCode;
      reason: string;
      manifest?: Manifest;
      payload: string;
      manifestPath: string;
    };

export interface VerifyOptions {
  /**
   * SQLite format: keep the decompressed, checked database at this path (a
   * restore continues from it) instead of a temporary file that is removed.
   */
  stageSqliteTo?: string;
}

/**
 * Checks that a backup is complete and restorable: its manifest, the
 * payload's size and SHA-256, decompression, and the content itself (SQLite
 * integrity_check on a temporary copy; the structure of a pg_dump archive or
 * of a logical export), whose counts must match the manifest. `file` names
 * the payload or its manifest. Damage is a value; only a failure to check
 * at all (pg_restore missing, no room for the temporary copy) throws.
 */
export async function verifyBackup(
  file: string,
  options: VerifyOptions = {},
): Promise<Verification> {
  const paths = backupPaths(file);
  const at = { payload: paths.payload, manifestPath: paths.manifest };
  if (!exists(paths.payload)) {
    // Nothing there at all is a wrong path, not a damaged backup.
    if (!exists(paths.manifest)) throw new BackupError(`${file} does not exist`);
    return {
      ok: false,
      code: "missing",
      reason: "the backup file is missing (only its manifest is there)",
      ...at,
    };
  }
  const read = readManifest(paths.manifest);
  if (!read.ok) return { ok: false, code: read.code, reason: read.reason, ...at };
  const result = await verifyPayload(paths.payload, read.manifest, options);
  return result.ok
    ? { ok: true, manifest: read.manifest, checks: result.checks, ...at }
    : { ...result, manifest: read.manifest, ...at };
}

function exists(path: string): boolean {
  try {
    return statSync(path).isFile();
  } catch {
    return false;
  }
}

/** The checks on a payload against the manifest that describes it. */
export async function verifyPayload(
  payload: string,
  manifest: Manifest,
  options: VerifyOptions = {},
): Promise<PayloadCheck> {
  const size = statSync(payload).size;
  const expected = manifest.payload.bytes;
  if (size === 0) return { ok: false, code: "empty", reason: "the backup file is empty" };
  if (size < expected) {
    return {
      ok: false,
      code: "truncated",
      reason: `the backup file is cut short: ${size} of ${expected} bytes`,
    };
  }
  if (size > expected) {
    return {
      ok: false,
      code: "size",
      reason: `the backup file is larger than recorded: ${size} bytes, expected ${expected}`,
    };
  }
  const { sha256 } = await sha256File(payload);
  if (sha256 !== manifest.payload.sha256) {
    return {
      ok: false,
      code: "checksum",
      reason:
        "checksum mismatch: the file's content changed since it was written (damaged or altered)",
    };
  }
  const checks = ["size", "SHA-256"];
  const content =
    manifest.format === "sqlite"
      ? await checkSqlite(payload, manifest, options.stageSqliteTo)
      : manifest.format === "pg_dump"
        ? await checkDump(payload, manifest)
        : await checkLogical(payload, manifest);
  return content.ok ? { ok: true, checks: [...checks, ...content.checks] } : content;
}

async function checkSqlite(
  payload: string,
  manifest: Manifest,
  stageTo: string | undefined,
): Promise<PayloadCheck> {
  const gzip = manifest.compression === "gzip";
  const staged = stageTo ?? tempPath(tmpdir(), "tollgate-verify.db");
  let keep = false;
  try {
    try {
      await expandTo(payload, staged, gzip);
    } catch (err) {
      if (!isZlibError(err)) {
        throw new BackupError(`cannot write a temporary copy at ${staged}: ${messageOf(err)}`);
      }
      return { ok: false, code: "content", reason: `cannot decompress: ${messageOf(err)}` };
    }
    if (!isSqliteFile(staged)) {
      return isPgDumpArchive(staged)
        ? { ok: false, code: "wrong-kind", reason: "the payload is a pg_dump archive, not SQLite" }
        : { ok: false, code: "content", reason: "the payload is not a SQLite database" };
    }
    const info = inspectSqlite(staged);
    if (!info.ok) return { ok: false, code: "content", reason: info.reason };
    const mismatch = compare(manifest, info.counts, info.schema);
    if (mismatch) return { ok: false, code: "content", reason: mismatch };
    keep = stageTo !== undefined;
    return {
      ok: true,
      checks: [...(gzip ? ["gzip decompression"] : []), "SQLite integrity_check", "counts"],
    };
  } finally {
    if (!keep) removeSqliteFiles(staged);
  }
}

async function checkDump(payload: string, manifest: Manifest): Promise<PayloadCheck> {
  if (!isPgDumpArchive(payload)) {
    return isSqliteFile(payload)
      ? { ok: false, code: "wrong-kind", reason: "the payload is a SQLite database, not pg_dump" }
      : { ok: false, code: "content", reason: "the payload is not a pg_dump archive" };
  }
  const info = await inspectDump(payload);
  if (!info.ok) return { ok: false, code: "content", reason: info.reason };
  const mismatch = compare(manifest, info.counts, info.schema);
  if (mismatch) return { ok: false, code: "content", reason: mismatch };
  return {
    ok: true,
    checks: ["pg_restore reads every table's data", "archive structure", "counts"],
  };
}

async function checkLogical(payload: string, manifest: Manifest): Promise<PayloadCheck> {
  const gzip = manifest.compression === "gzip";
  const seen = new Set<string>();
  const counts = emptyCounts();
  let end: BackupCounts | undefined;
  try {
    for await (const r of readLogical(payload, gzip)) {
      if (r.type === "header" && r.header.kind !== manifest.kind) {
        return {
          ok: false,
          code: "wrong-kind",
          reason: `the payload is an export of ${r.header.kind}, the manifest says ${manifest.kind}`,
        };
      }
      if (r.type === "key") {
        if (seen.has(r.row.key.id)) {
          return { ok: false, code: "content", reason: `key ${r.row.key.id} appears twice` };
        }
        seen.add(r.row.key.id);
        addRow(counts, r.row);
      }
      if (r.type === "checkpoint") counts.checkpoints++;
      if (r.type === "end") end = r.counts;
    }
  } catch (err) {
    const why =
      err instanceof LogicalFormatError ? err.message : `cannot decompress: ${messageOf(err)}`;
    return { ok: false, code: "content", reason: why };
  }
  if (end && differences(end, counts).length > 0) {
    return { ok: false, code: "content", reason: "the records disagree with the end record" };
  }
  const mismatch = compare(manifest, counts, null);
  if (mismatch) return { ok: false, code: "content", reason: mismatch };
  return {
    ok: true,
    checks: [...(gzip ? ["gzip decompression"] : []), "every record's format", "counts"],
  };
}

/** Damaged compressed data, as opposed to a failure to read or write a file. */
function isZlibError(err: unknown): boolean {
  const code = (err as { code?: unknown }).code;
  return typeof code === "string" && code.startsWith("Z_");
}

/** Fields whose values differ, as `name actual (expected: …)`. */
export function differences(expected: BackupCounts, actual: BackupCounts): string[] {
  return (Object.keys(expected) as Array<keyof BackupCounts>)
    .filter((k) => expected[k] !== actual[k])
    .map((k) => `${k} ${actual[k]} (expected ${expected[k]})`);
}

/** What differs between the manifest and what the payload holds, or null. */
function compare(
  manifest: Manifest,
  counts: BackupCounts,
  schema: SchemaVersion | null,
): string | null {
  const diffs = differences(manifest.counts, counts);
  if (schema && schema.latestAt !== manifest.schema.latestAt) {
    diffs.push(`schema ${schema.latestAt} (expected ${manifest.schema.latestAt})`);
  }
  return diffs.length > 0 ? `the content differs from its manifest: ${diffs.join(", ")}` : null;
}
