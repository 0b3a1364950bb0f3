// Usage is kept in 5-minute buckets. A bucket counts towards a window while
// it started less than the window's span ago, so usage ages out bucket by
// bucket. This is the data model's own arithmetic, shared by storage,
// accounting and quota. Pure: every function takes `now` (epoch ms).

export const BUCKET_MS = 5 * 60 * 1000;
/** The rolling window every key has. */
export const WINDOW_MS = 5 * 60 * 60 * 1000;
/** The optional weekly window. */
export const WEEK_MS = 7 * 24 * 60 * 60 * 1000;

export interface Bucket {
  bucketStart: number;
  tokens: number;
}

export function bucketStartOf(t: number): number {
  return t - (((t % BUCKET_MS) + BUCKET_MS) % BUCKET_MS);
}

/** Oldest bucket start still inside the window at `now`. */
export function windowFloor(now: number, spanMs = WINDOW_MS): number {
  return now - spanMs + 1;
}

export function inWindow(bucketStart: number, now: number, spanMs = WINDOW_MS): boolean {
  return bucketStart >= windowFloor(now, spanMs) && bucketStart <= now;
}

export function windowUsage(buckets: Iterable<Bucket>, now: number, spanMs = WINDOW_MS): number {
  let sum = 0;
  for (const b of buckets) if (inWindow(b.bucketStart, now, spanMs)) sum += b.tokens;
  return sum;
}
