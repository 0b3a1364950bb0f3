import { BUCKET_MS, bucketStartOf, inWindow, WINDOW_MS } from "../../time/buckets.ts";
import type { BucketUsage, KeyUsage } from "../types.ts";
import { iso } from "./records.ts";
import type { RawCache, RawKey } from "./schema.ts";

// Usage in the legacy file is kept twice, as the old gateway kept it:
// `rolling_window_cache` holds 5-minute buckets (Tollgate's own model, with a
// `requests` count added to each bucket), and `usage_windows` holds the old
// fixed windows, so that a rollback to the old gateway still sees what was
// used. Neither keeps history beyond the 5-hour window: history is what the
// database backends are for.

/** What usage is read from: an entry as parsed, or as it is in the file. */
type UsageFields = Pick<RawKey, "rolling_window_cache" | "usage_windows">;

/** A key's buckets that started at or after `since`, oldest first. */
export function bucketsSince(k: UsageFields, since: number): BucketUsage[] {
  const merged = new Map<number, BucketUsage>();
  const add = (start: number, tokens: number, requests: number) => {
    if (start < since) return;
    const b = merged.get(start);
    if (b) {
      b.tokens += tokens;
      b.requests += requests;
    } else merged.set(start, { bucketStart: start, tokens, requests });
  };
  if (k.rolling_window_cache) {
    for (const b of k.rolling_window_cache.buckets) {
      add(bucketStartOf(b.timestamp), b.tokens, b.requests ?? 0);
    }
  } else {
    // No cache: each old window's tokens count in the bucket it started in.
    for (const w of k.usage_windows ?? [])
      add(bucketStartOf(Date.parse(w.window_start)), w.tokens_used, 0);
  }
  return [...merged.values()].sort((a, b) => a.bucketStart - b.bucketStart);
}

/**
 * Charges one key's share of a batch to its entry, as it is in the file (so
 * fields may be missing where the schema has defaults). Reads what it adds
 * to from the entry itself, so a key appearing twice in a batch adds up.
 */
export function chargeEntry(entry: RawKey, usage: KeyUsage): void {
  entry.total_lifetime_tokens = (entry.total_lifetime_tokens ?? 0) + usage.tokens;
  entry.total_requests = (entry.total_requests ?? 0) + usage.requests;
  // The old format may say "" for never used.
  const previous =
    typeof entry.last_used === "string" && entry.last_used ? Date.parse(entry.last_used) : 0;
  const lastUsed = Math.max(previous, usage.lastUsedAt);
  if (lastUsed > 0) entry.last_used = iso(lastUsed);
  if (usage.buckets.length === 0) return;
  const buckets = [...usage.buckets].sort((a, b) => a.bucketStart - b.bucketStart);
  chargeCache(entry, buckets, lastUsed);
  chargeWindows(entry, buckets, usage.lastUsedAt);
}

function chargeCache(entry: RawKey, buckets: BucketUsage[], lastUsed: number) {
  // A key used so far only by the old gateway has windows but no cache: seed
  // the cache from them, or the usage already in the window would vanish from
  // the quota the moment the cache appears.
  const cache: RawCache = entry.rolling_window_cache ?? {
    buckets: bucketsSince(entry, 0).map((b) => ({ timestamp: b.bucketStart, tokens: b.tokens })),
  };
  for (const b of buckets) {
    const hit = cache.buckets.find((c) => c.timestamp === b.bucketStart);
    if (hit) {
      hit.tokens += b.tokens;
      hit.requests = (hit.requests ?? 0) + b.requests;
    } else {
      cache.buckets.push({ timestamp: b.bucketStart, tokens: b.tokens, requests: b.requests });
    }
  }
  // Age out relative to the newest usage, not the wall clock: a replayed old
  // batch then never drops buckets that a later one still counts.
  const newest = buckets[buckets.length - 1]?.bucketStart ?? 0;
  cache.buckets = cache.buckets
    .filter((c) => c.timestamp > newest || inWindow(c.timestamp, newest))
    .sort((a, b) => a.timestamp - b.timestamp);
  cache.runningTotal = cache.buckets.reduce((sum, c) => sum + c.tokens, 0);
  cache.lastUpdated = iso(lastUsed);
  cache.windowDurationMs = WINDOW_MS;
  cache.bucketSizeMs = BUCKET_MS;
  entry.rolling_window_cache = cache;
}

/**
 * The old gateway's rule: a request counts in a window that started at most
 * 5 hours before it, and starts a new window when there is none. The moment
 * of a request is known only to the bucket, except for the newest one.
 */
function chargeWindows(entry: RawKey, buckets: BucketUsage[], lastUsedAt: number) {
  const windows = entry.usage_windows ?? [];
  for (const b of buckets) {
    const at =
      lastUsedAt >= b.bucketStart && lastUsedAt < b.bucketStart + BUCKET_MS
        ? lastUsedAt
        : b.bucketStart;
    let current: (typeof windows)[number] | undefined;
    for (const w of windows) {
      const start = Date.parse(w.window_start);
      if (start >= at - WINDOW_MS && (!current || start > Date.parse(current.window_start))) {
        current = w;
      }
    }
    if (current) current.tokens_used += b.tokens;
    else windows.push({ window_start: iso(at), tokens_used: b.tokens });
  }
  // Windows that started more than 5 hours before the newest usage can never
  // be current again; dropping them keeps the file from growing forever.
  const newest = buckets[buckets.length - 1]?.bucketStart ?? 0;
  entry.usage_windows = windows.filter((w) => Date.parse(w.window_start) >= newest - WINDOW_MS);
}

/**
 * Removes up to `budget` of a key's buckets that started before `before`,
 * oldest first, and returns how many went. It edits what `bucketsSince`
 * reads: the cache when there is one, else the old windows (a key only the
 * old gateway used). Windows beside a cache are left alone: they are the old
 * gateway's, and `chargeWindows` already keeps them within 5 hours.
 */
export function pruneEntry(entry: RawKey, before: number, budget: number): number {
  const cache = entry.rolling_window_cache;
  if (cache) {
    const drop = oldestStarts(
      cache.buckets.map((b) => bucketStartOf(b.timestamp)),
      before,
      budget,
    );
    if (drop.size === 0) return 0;
    cache.buckets = cache.buckets.filter((b) => !drop.has(bucketStartOf(b.timestamp)));
    cache.runningTotal = cache.buckets.reduce((sum, b) => sum + b.tokens, 0);
    return drop.size;
  }
  const windows = entry.usage_windows ?? [];
  const start = (w: (typeof windows)[number]) => bucketStartOf(Date.parse(w.window_start));
  const drop = oldestStarts(windows.map(start), before, budget);
  if (drop.size > 0) entry.usage_windows = windows.filter((w) => !drop.has(start(w)));
  return drop.size;
}

/** The oldest `budget` distinct bucket starts before `before`. */
function oldestStarts(starts: number[], before: number, budget: number): Set<number> {
  const old = [...new Set(starts.filter((s) => s < before))].sort((a, b) => a - b);
  return new Set(old.slice(0, Math.max(0, budget)));
}
