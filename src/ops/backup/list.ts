import { readdirSync, statSync } from "node:fs";
import { join } from "node:path";
import {
  backupPaths,
  looksLikePayload,
  MANIFEST_SUFFIX,
  type Manifest,
  readManifest,
} from "./manifest.ts";

export interface ListedBackup {
  /** The payload's path (what `backup verify` and `restore` take). */
  path: string;
  manifestPath: string;
  /** "ok": manifest intact and payload of the recorded size; `backup verify` checks the content. */
  status: "ok" | "damaged";
  problem?: string;
  manifest?: Manifest;
  /** The payload's size on disk (null: missing). */
  bytes: number | null;
  /** From the manifest, else from the name. */
  createdAt: string | null;
}

function sizeOf(path: string): number | null {
  try {
    const st = statSync(path);
    return st.isFile() ? st.size : null;
  } catch {
    return null;
  }
}

/** When a file name says it was taken (for payloads whose manifest is gone). */
function stampOf(name: string): string | null {
  const m = /-(\d{4}-\d{2}-\d{2})T(\d{2})-(\d{2})-(\d{2})-(\d{3})Z/.exec(name);
  return m ? `${m[1]}T${m[2]}:${m[3]}:${m[4]}.${m[5]}Z` : null;
}

/**
 * The backups in `dir`, newest first, with a cheap soundness check (manifest
 * intact, payload present at its recorded size) that never throws: a damaged
 * backup is listed as damaged. Other files are ignored.
 */
export function listBackups(dir: string): ListedBackup[] {
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return [];
  }
  const out: ListedBackup[] = [];
  const seen = new Set<string>();
  for (const name of names) {
    if (name.startsWith(".")) continue;
    let paths: { payload: string; manifest: string };
    if (name.endsWith(MANIFEST_SUFFIX)) paths = backupPaths(join(dir, name));
    else if (looksLikePayload(name)) paths = backupPaths(join(dir, name));
    else continue;
    if (seen.has(paths.payload)) continue;
    seen.add(paths.payload);
    out.push(inspect(paths.payload, paths.manifest));
  }
  return out.sort((a, b) => (b.createdAt ?? "").localeCompare(a.createdAt ?? ""));
}

function inspect(payload: string, manifestPath: string): ListedBackup {
  const bytes = sizeOf(payload);
  const base = { path: payload, manifestPath, bytes };
  const read = readManifest(manifestPath);
  if (!read.ok) {
    return { ...base, status: "damaged", problem: read.reason, createdAt: stampOf(payload) };
  }
  const m = read.manifest;
  const problem =
    bytes === null
      ? "the backup file is missing"
      : bytes === 0
        ? "the backup file is empty"
        : bytes !== m.payload.bytes
          ? `${bytes} bytes on disk, ${m.payload.bytes} recorded`
          : undefined;
  return {
    ...base,
    manifest: m,
    createdAt: m.createdAt,
    status: problem ? "damaged" : "ok",
    ...(problem ? { problem } : {}),
  };
}
