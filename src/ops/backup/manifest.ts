import { createHash } from "node:crypto";
import { readFileSync, renameSync, writeFileSync } from "node:fs";
import { basename, dirname } from "node:path";
import { z } from "zod";
import type { DataCounts } from "../../storage/types.ts";
import { PRIVATE_FILE } from "../../util/private-files.ts";
import { BackupError } from "./errors.ts";
import { fsyncDir, fsyncFile, removeQuietly, tempPath } from "./files.ts";

// Every backup is a payload file plus a sidecar `<payload>.manifest.json`.
// The payload stays a file the standard tools read (a SQLite database, a
// pg_dump archive, NDJSON), so an operator can always get at the data by hand;
// the manifest says what it is and carries the payload's size and SHA-256. The
// manifest is written last, so its presence marks a complete backup, and it
// carries a checksum of itself, so an altered manifest is caught too.

export const MANIFEST_VERSION = 1;
export const MANIFEST_SUFFIX = ".manifest.json";

export type DatabaseKind = "sqlite" | "postgres";

/** Formats this version reads. `logical` is NDJSON and restores into either kind. */
export const BACKUP_FORMATS = ["sqlite", "pg_dump", "logical"] as const;
export type BackupFormat = (typeof BACKUP_FORMATS)[number];

export type BackupOrigin = "manual" | "scheduled" | "pre-restore";

export type BackupCounts = DataCounts;

export interface SchemaVersion {
  /** Migrations applied. */
  migrations: number;
  /** Tag of the newest applied migration, when this version knows it. */
  latest: string | null;
  /** Drizzle's `created_at` of the newest applied migration. */
  latestAt: number | null;
}

const count = z.number().int().min(0);

const manifestSchema = z.object({
  manifest: z.literal(MANIFEST_VERSION),
  file: z.string().min(1),
  kind: z.enum(["sqlite", "postgres"]),
  // Checked against BACKUP_FORMATS separately, for a message that names it.
  format: z.string(),
  compression: z.enum(["gzip", "none", "pg_dump"]),
  origin: z.enum(["manual", "scheduled", "pre-restore"]),
  source: z.string(),
  createdAt: z.iso.datetime(),
  tollgateVersion: z.string(),
  schema: z.object({
    migrations: count,
    latest: z.string().nullable(),
    latestAt: z.number().int().nullable(),
  }),
  counts: z.object({
    keys: count,
    usageBuckets: count,
    lifetimeTokens: count,
    lifetimeRequests: count,
    bucketTokens: count,
    checkpoints: count,
  }),
  payload: z.object({ bytes: count, sha256: z.string().regex(/^[0-9a-f]{64}$/) }),
});

export type Manifest = Omit<z.infer<typeof manifestSchema>, "format"> & { format: BackupFormat };

export type ManifestRead =
  | { ok: true; manifest: Manifest }
  | { ok: false; code: "missing" | "manifest" | "unknown-format"; reason: string };

/** The file name of a new backup; its time stamp sorts. */
export function backupFileName(
  kind: DatabaseKind,
  format: BackupFormat,
  gzip: boolean,
  origin: BackupOrigin,
  at: Date,
): string {
  const stamp = at.toISOString().replace(/[:.]/g, "-");
  const tag = origin === "manual" ? "" : `-${origin}`;
  const ext = format === "sqlite" ? ".db" : format === "pg_dump" ? ".dump" : ".ndjson";
  return `tollgate-${kind}-${stamp}${tag}${ext}${gzip && format !== "pg_dump" ? ".gz" : ""}`;
}

/** A name `backups list` recognises as a payload even when its manifest is gone. */
export function looksLikePayload(name: string): boolean {
  return /^tollgate-(sqlite|postgres)-.+\.(db|db\.gz|dump|ndjson|ndjson\.gz)$/.test(name);
}

/** The payload and manifest paths for a path naming either. */
export function backupPaths(file: string): { payload: string; manifest: string } {
  if (file.endsWith(MANIFEST_SUFFIX)) {
    return { payload: file.slice(0, -MANIFEST_SUFFIX.length), manifest: file };
  }
  return { payload: file, manifest: `${file}${MANIFEST_SUFFIX}` };
}

function digest(body: unknown): string {
  return createHash("sha256").update(JSON.stringify(body)).digest("hex");
}

/** Written beside the payload, atomically (temp file, fsync, rename). */
export function writeManifest(path: string, manifest: Manifest): void {
  // A checksum already present (a manifest read back and changed) is replaced, not hashed.
  const { manifestSha256: _, ...body } = manifest as Manifest & { manifestSha256?: unknown };
  const text = `${JSON.stringify({ ...body, manifestSha256: digest(body) }, null, 2)}\n`;
  const tmp = tempPath(dirname(path), basename(path));
  try {
    writeFileSync(tmp, text, { flag: "wx", mode: PRIVATE_FILE });
    fsyncFile(tmp);
    renameSync(tmp, path);
    fsyncDir(dirname(path));
  } catch (err) {
    removeQuietly(tmp);
    throw new BackupError(`cannot write the manifest ${path}: ${(err as Error).message}`);
  }
}

export function readManifest(path: string): ManifestRead {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === "ENOENT") {
      return {
        ok: false,
        code: "missing",
        reason: `its manifest ${basename(path)} is missing (a backup without one is incomplete or was moved without it)`,
      };
    }
    return { ok: false, code: "manifest", reason: `cannot read the manifest: ${code ?? err}` };
  }
  if (text.trim() === "") return { ok: false, code: "manifest", reason: "the manifest is empty" };
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch {
    return { ok: false, code: "manifest", reason: "the manifest is not valid JSON (damaged)" };
  }
  if (typeof raw !== "object" || raw === null || Array.isArray(raw)) {
    return { ok: false, code: "manifest", reason: "the manifest is not a JSON object" };
  }
  const { manifestSha256, ...body } = raw as Record<string, unknown>;
  if (typeof body.manifest === "number" && body.manifest > MANIFEST_VERSION) {
    return {
      ok: false,
      code: "unknown-format",
      reason: `the manifest is of version ${body.manifest}, newer than this version of Tollgate reads (${MANIFEST_VERSION}); upgrade Tollgate`,
    };
  }
  if (manifestSha256 !== digest(body)) {
    return {
      ok: false,
      code: "manifest",
      reason: "the manifest was altered or damaged (its own checksum does not match)",
    };
  }
  const parsed = manifestSchema.safeParse(body);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    return {
      ok: false,
      code: "manifest",
      reason: `the manifest is invalid: ${issue?.path.join(".")}: ${issue?.message}`,
    };
  }
  const m = parsed.data;
  if (!(BACKUP_FORMATS as readonly string[]).includes(m.format)) {
    return {
      ok: false,
      code: "unknown-format",
      reason: `unknown backup format "${m.format}" (made by Tollgate ${m.tollgateVersion}; this version reads ${BACKUP_FORMATS.join(", ")})`,
    };
  }
  return { ok: true, manifest: m as Manifest };
}
