import { displayPrefix, hashKey } from "../../keys/secret.ts";
import type { KeyRecord, NewKey } from "../types.ts";
import {
  type FileKey,
  type KeyFile,
  KeyFileError,
  keyLabel,
  parseKeyFile,
  type RawFile,
  type RawKey,
} from "./schema.ts";

// Between the file's entries and Tollgate's key records.

/**
 * The old format requires an `expiry_date` on every key, so a key that never
 * expires is written with this far-future date, and any date from the year
 * 9999 on is read back as "never" (`expiresAt: null`). The old gateway simply
 * sees a key valid for another eight thousand years.
 */
export const NEVER_EXPIRES = "9999-12-31T23:59:59.999Z";
const NEVER_FROM = Date.UTC(9999, 0, 1);

export function expiryToFile(expiresAt: number | null): string {
  return expiresAt === null ? NEVER_EXPIRES : iso(expiresAt);
}

export function expiryFromFile(date: string): number | null {
  const t = Date.parse(date);
  return t >= NEVER_FROM ? null : t;
}

export function iso(t: number): string {
  return new Date(t).toISOString();
}

/**
 * Legacy entries have no id. Derived from the key's hash, it is the same in
 * every process and across restarts without writing anything; it is written
 * into the entry before the hash can change (rotation).
 */
export function legacyId(keyHash: string): string {
  return `legacy_${keyHash.slice(0, 16)}`;
}

/** The hash of an entry: of the plaintext for legacy keys, stored for ours. */
export function entryHash(k: Pick<FileKey, "key" | "key_sha256">): string {
  if (k.key !== undefined) return hashKey(k.key);
  if (k.key_sha256 !== undefined) return k.key_sha256;
  // The schema guarantees one of the two.
  throw new Error("key entry without key or key_sha256");
}

export function toRecord(k: FileKey): KeyRecord {
  const keyHash = entryHash(k);
  const createdAt = Date.parse(k.created_at);
  return {
    id: k.id ?? legacyId(keyHash),
    keyHash,
    keyPrefix: k.key_prefix ?? displayPrefix(k.key ?? ""),
    name: k.name,
    tokenLimit: k.token_limit_per_5h,
    model: k.model ?? null,
    expiresAt: expiryFromFile(k.expiry_date),
    maxConcurrent: k.max_concurrent ?? null,
    weeklyLimit: k.token_limit_per_week ?? null,
    allowedModels: k.allowed_models ?? null,
    disabled: k.disabled ?? false,
    createdAt,
    updatedAt: k.updated_at ? Date.parse(k.updated_at) : createdAt,
    lastUsedAt: k.last_used ? Date.parse(k.last_used) : null,
    totalTokens: k.total_lifetime_tokens,
    totalRequests: k.total_requests ?? 0,
    revokedAt: k.revoked_at ? Date.parse(k.revoked_at) : null,
  };
}

/** A key created by Tollgate: hash and display prefix only, never the secret. */
export function newEntry(key: NewKey): RawKey {
  const entry: RawKey = {
    id: key.id,
    key_sha256: key.keyHash,
    key_prefix: key.keyPrefix,
    name: key.name,
    token_limit_per_5h: key.tokenLimit,
    expiry_date: expiryToFile(key.expiresAt),
    created_at: iso(key.createdAt),
    updated_at: iso(key.createdAt),
    last_used: null,
    total_lifetime_tokens: 0,
    total_requests: 0,
    disabled: false,
    usage_windows: [],
  };
  if (key.model !== null) entry.model = key.model;
  if (key.maxConcurrent !== null) entry.max_concurrent = key.maxConcurrent;
  if (key.weeklyLimit !== null) entry.token_limit_per_week = key.weeklyLimit;
  if (key.allowedModels !== null) entry.allowed_models = key.allowedModels;
  return entry;
}

/** The file as read, with its keys indexed the ways Tollgate looks them up. */
export interface Snapshot {
  /** Exactly as in the file; the base of every write. */
  raw: RawFile;
  /** Validated, defaults applied; `parsed.keys[i]` is `raw.keys[i]`. */
  parsed: KeyFile;
  /** `records[i]` is `parsed.keys[i]`. */
  records: KeyRecord[];
  byHash: Map<string, number>;
  byId: Map<string, number>;
}

export function readSnapshot(text: string, path: string): Snapshot {
  const { raw, parsed } = parseKeyFile(text, path);
  return indexSnapshot(raw, parsed, path);
}

/** Indexes a parsed file; two entries with one key or one id make the file invalid. */
export function indexSnapshot(raw: RawFile, parsed: KeyFile, path: string): Snapshot {
  const records = parsed.keys.map(toRecord);
  const byHash = new Map<string, number>();
  const byId = new Map<string, number>();
  for (const [i, r] of records.entries()) {
    const sameKey = byHash.get(r.keyHash);
    const sameId = byId.get(r.id);
    const clash = sameKey ?? sameId;
    if (clash !== undefined) {
      const what = sameKey !== undefined ? "key" : "id";
      throw new KeyFileError(
        `legacy key file ${path} is invalid: keys[${i}]${keyLabel(raw, i)} has the same ${what} as keys[${clash}]${keyLabel(raw, clash)}`,
      );
    }
    byHash.set(r.keyHash, i);
    byId.set(r.id, i);
  }
  return { raw, parsed, records, byHash, byId };
}
