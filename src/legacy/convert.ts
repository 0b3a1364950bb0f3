import { displayPrefix, hashKey } from "../keys/secret.ts";
import type { BucketUsage, KeyExport } from "../storage/types.ts";
import { bucketStartOf, windowUsage } from "../time/buckets.ts";
import { type LegacyFile, type LegacyKey, legacyFile } from "./format.ts";
import { describeJsonError } from "./json-error.ts";

/** Expiry dates from this year on mean "never" (the old format requires a date). */
const NEVER_YEAR = 9999;

export type LegacyParse =
  | { ok: true; file: LegacyFile }
  /** `shape`: what the file should look like, when its outline is wrong. */
  | { ok: false; problems: string[]; shape?: string };

/** The outline of a legacy file, shown when a file does not have it. */
export const LEGACY_SHAPE = `{
  "keys": [
    {
      "key": "pk_…",
      "name": "alice",
      "token_limit_per_5h": 100000,
      "expiry_date": "2027-01-31T00:00:00.000Z",
      "created_at": "2026-01-01T00:00:00.000Z",
      "model": "glm-4.7",
      "last_used": null,
      "total_lifetime_tokens": 0,
      "usage_windows": []
    }
  ]
}
(model, last_used, total_lifetime_tokens and usage_windows may be left out; see docs/migration.md)`;

/** The id a legacy key gets: stable, so a re-run and the file backend agree on it. */
export function legacyKeyId(keyHash: string): string {
  return `legacy_${keyHash.slice(0, 16)}`;
}

/**
 * Reads and checks a legacy file. Every problem names the key by position and
 * name, never by the key itself.
 */
export function parseLegacy(text: string): LegacyParse {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    return { ok: false, problems: [`not valid JSON: ${describeJsonError(text, err)}`] };
  }
  const r = legacyFile.safeParse(json);
  if (!r.success) {
    const keys = (json as { keys?: unknown[] } | null)?.keys;
    // The outline itself is wrong (no keys list, or an entry that is no object).
    const isObject = (v: unknown) => typeof v === "object" && v !== null && !Array.isArray(v);
    const outline = r.error.issues.some(
      (issue) =>
        issue.path.length < 2 ||
        (issue.path.length === 2 && !isObject(keys?.[issue.path[1] as number])),
    );
    return {
      ok: false,
      ...(outline ? { shape: LEGACY_SHAPE } : {}),
      problems: r.error.issues.map((issue) => {
        const [top, index, ...rest] = issue.path;
        if (top === "keys" && typeof index === "number") {
          const field = rest.length > 0 ? `${rest.join(".")}: ` : "";
          return `${keyLabel(index, keys?.[index])}: ${field}${issue.message}`;
        }
        return `${issue.path.join(".") || "file"}: ${issue.message}`;
      }),
    };
  }
  const problems: string[] = [];
  const seen = new Map<string, number>();
  r.data.keys.forEach((k, i) => {
    const first = seen.get(k.key);
    if (first !== undefined) {
      problems.push(`${keyLabel(i, k)}: the same key as ${keyLabel(first, r.data.keys[first])}`);
    } else seen.set(k.key, i);
  });
  return problems.length > 0 ? { ok: false, problems } : { ok: true, file: r.data };
}

function keyLabel(index: number, entry: unknown): string {
  const name = (entry as { name?: unknown } | undefined)?.name;
  return `key #${index + 1}${typeof name === "string" ? ` ("${name}")` : ""}`;
}

/** Legacy keys as rows for the database: hashed, usage in 5-minute buckets. */
export function legacyToRows(file: LegacyFile): KeyExport[] {
  return file.keys.map(legacyToRow);
}

function legacyToRow(k: LegacyKey): KeyExport {
  const keyHash = hashKey(k.key);
  const expires = Date.parse(k.expiry_date);
  const createdAt = Date.parse(k.created_at);
  const extra = k as Record<string, unknown>;
  const requests = extra.total_requests;
  // The old format has no such field; a file written by Tollgate's file backend may.
  const concurrent = extra.max_concurrent;
  const weekly = extra.token_limit_per_week;
  const models = extra.allowed_models;
  return {
    key: {
      id: legacyKeyId(keyHash),
      keyHash,
      keyPrefix: displayPrefix(k.key),
      name: k.name,
      tokenLimit: k.token_limit_per_5h,
      model: k.model ? k.model : null,
      expiresAt: new Date(expires).getUTCFullYear() >= NEVER_YEAR ? null : expires,
      maxConcurrent:
        Number.isSafeInteger(concurrent) && (concurrent as number) >= 1
          ? (concurrent as number)
          : null,
      weeklyLimit:
        Number.isSafeInteger(weekly) && (weekly as number) >= 0 ? (weekly as number) : null,
      allowedModels:
        Array.isArray(models) && models.length > 0 && models.every((m) => typeof m === "string")
          ? (models as string[])
          : null,
      disabled: extra.disabled === true,
      createdAt,
      updatedAt: createdAt,
      lastUsedAt: k.last_used ? Date.parse(k.last_used) : null,
      totalTokens: k.total_lifetime_tokens,
      totalRequests: Number.isSafeInteger(requests) ? (requests as number) : 0,
      revokedAt: null,
    },
    buckets: legacyBuckets(k),
  };
}

/**
 * The rolling cache's 5-minute buckets when the file has them (they are
 * finer), else each usage window's tokens in the bucket its window started
 * in. Request counts per bucket were never kept, so they are 0.
 */
export function legacyBuckets(k: LegacyKey): BucketUsage[] {
  const merged = new Map<number, number>();
  const add = (t: number, tokens: number) => {
    if (tokens <= 0) return;
    const b = bucketStartOf(t);
    merged.set(b, (merged.get(b) ?? 0) + tokens);
  };
  const cached = k.rolling_window_cache?.buckets;
  if (cached && cached.length > 0) for (const b of cached) add(b.timestamp, b.tokens);
  else for (const w of k.usage_windows) add(Date.parse(w.window_start), w.tokens_used);
  return [...merged]
    .sort((a, b) => a[0] - b[0])
    .map(([bucketStart, tokens]) => ({ bucketStart, tokens, requests: 0 }));
}

export interface ImportSummary {
  keys: number;
  expired: number;
  lifetimeTokens: number;
  windowTokens: number;
  buckets: number;
}

export function summarize(rows: KeyExport[], now: number): ImportSummary {
  let expired = 0;
  let lifetimeTokens = 0;
  let windowTokens = 0;
  let buckets = 0;
  for (const r of rows) {
    if (r.key.expiresAt !== null && r.key.expiresAt <= now) expired++;
    lifetimeTokens += r.key.totalTokens;
    windowTokens += windowUsage(r.buckets, now);
    buckets += r.buckets.length;
  }
  return { keys: rows.length, expired, lifetimeTokens, windowTokens, buckets };
}
