// Rolling windows over the usage buckets (see time/buckets.ts): what is left,
// when it frees up, what one charge changes. Pure: every function takes `now`
// (epoch ms). A key may also have a weekly window: the same rule over 7 days
// (`spanMs` = WEEK_MS).

import {
  type Bucket,
  bucketStartOf,
  inWindow,
  WEEK_MS,
  WINDOW_MS,
  windowFloor,
} from "../time/buckets.ts";

/** The window's length in words, for messages. */
export function windowName(spanMs: number): string {
  return spanMs === WEEK_MS ? "7 days" : "5 hours";
}

/** Buckets in the window, merged by start and sorted oldest first. */
export function windowBuckets(
  buckets: Iterable<Bucket>,
  now: number,
  spanMs = WINDOW_MS,
): Bucket[] {
  const merged = new Map<number, number>();
  for (const b of buckets) {
    if (b.tokens === 0 || !inWindow(b.bucketStart, now, spanMs)) continue;
    merged.set(b.bucketStart, (merged.get(b.bucketStart) ?? 0) + b.tokens);
  }
  return [...merged]
    .map(([bucketStart, tokens]) => ({ bucketStart, tokens }))
    .sort((a, b) => a.bucketStart - b.bucketStart);
}

export interface WindowState {
  /** The window's length: WINDOW_MS (5 hours) or WEEK_MS. */
  spanMs: number;
  limit: number;
  used: number;
  remaining: number;
  /** Whether a new request may start now. */
  allowed: boolean;
  /** Ms until enough buckets age out for usage to drop under the limit (0 if allowed). */
  retryAfterMs: number;
  /** When every token now in the window has aged out (epoch ms; `now` if none). */
  resetAt: number;
  /** Start of the oldest bucket still counted (epoch ms; `now` if none). */
  oldestStart: number;
}

/**
 * A request is admitted while usage < limit. When it is not, the wait is until
 * the oldest buckets have aged out far enough to bring usage under the limit.
 */
export function windowState(
  buckets: readonly Bucket[],
  limit: number,
  now: number,
  spanMs = WINDOW_MS,
): WindowState {
  // One pass, nothing allocated: this runs on every proxied request, over up
  // to a week of buckets. The buckets are merged and sorted only for the
  // wait of a window that is spent.
  const floor = windowFloor(now, spanMs);
  let used = 0;
  let oldest = Number.POSITIVE_INFINITY;
  let newest = Number.NEGATIVE_INFINITY;
  for (const b of buckets) {
    if (b.tokens === 0 || b.bucketStart < floor || b.bucketStart > now) continue;
    used += b.tokens;
    if (b.bucketStart < oldest) oldest = b.bucketStart;
    if (b.bucketStart > newest) newest = b.bucketStart;
  }
  const allowed = used < limit;
  // A limit of 0 never admits anything: no wait helps (0, as "unknown").
  const wait = allowed
    ? 0
    : untilAtMost(windowBuckets(buckets, now, spanMs), used, limit - 1, now, spanMs);
  const retryAfterMs = Number.isFinite(wait) ? wait : 0;
  return {
    spanMs,
    limit,
    used,
    remaining: Math.max(0, limit - used),
    allowed,
    retryAfterMs: Math.max(0, retryAfterMs),
    resetAt: Number.isFinite(newest) ? newest + spanMs : now,
    oldestStart: Number.isFinite(oldest) ? oldest : now,
  };
}

/**
 * Ms until the oldest in-window buckets (`inside`, oldest first, summing to
 * `used`) have aged out far enough that usage is at most `target`; 0 when it
 * already is, Infinity when it never will be (a negative target).
 */
function untilAtMost(
  inside: readonly Bucket[],
  used: number,
  target: number,
  now: number,
  spanMs: number,
): number {
  if (used <= target) return 0;
  if (target < 0) return Number.POSITIVE_INFINITY;
  let left = used;
  for (const b of inside) {
    left -= b.tokens;
    if (left <= target) return Math.max(0, b.bucketStart + spanMs - now);
  }
  return Number.POSITIVE_INFINITY;
}

/** Ms until the window's usage is at most `target` (Infinity if it never will be). */
export function msUntilUsageAtMost(
  buckets: Iterable<Bucket>,
  target: number,
  now: number,
  spanMs = WINDOW_MS,
): number {
  const inside = windowBuckets(buckets, now, spanMs);
  let used = 0;
  for (const b of inside) used += b.tokens;
  return untilAtMost(inside, used, target, now, spanMs);
}

/** The state once a response that cost `tokens` at `now` is charged. */
export function afterCharge(state: WindowState, tokens: number, now: number): WindowState {
  if (tokens <= 0) return state;
  const used = state.used + tokens;
  return {
    ...state,
    used,
    remaining: Math.max(0, state.limit - used),
    resetAt: Math.max(state.resetAt, bucketStartOf(now) + state.spanMs),
    oldestStart: state.used === 0 ? bucketStartOf(now) : state.oldestStart,
  };
}
