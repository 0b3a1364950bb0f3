import { AdminError } from "./errors.ts";

// Usage history as a chart wants it: a range cut into equal steps, every step
// present (zero when nothing was used), oldest first. Pure: `now` is passed in.

export const STEPS = ["5m", "15m", "1h", "6h", "1d"] as const;
export type Step = (typeof STEPS)[number];

const MINUTE = 60_000;
export const STEP_MS: Record<Step, number> = {
  "5m": 5 * MINUTE,
  "15m": 15 * MINUTE,
  "1h": 60 * MINUTE,
  "6h": 360 * MINUTE,
  "1d": 1440 * MINUTE,
};

export const MAX_POINTS = 2000;
const DEFAULT_SPAN_MS = 24 * 60 * MINUTE;

export interface UsageRange {
  from: number;
  to: number;
  stepMs: number;
}

/** Steps are aligned to the epoch (UTC), so a day is a UTC day. */
export const floorTo = (t: number, stepMs: number) => t - (((t % stepMs) + stepMs) % stepMs);

/**
 * The range a query asks for, floored to its step. Without `to`, the range
 * ends with the step that holds `now`, so current usage is part of it; without
 * `from`, it starts 24 hours before `to`. With `oldest` (the retention limit),
 * a range reaching further back starts there instead, and one lying wholly
 * before it is refused. A range that starts in the future is refused too:
 * an answer of zeros would read as "nothing was used".
 */
export function resolveRange(
  q: { from?: number; to?: number; step: Step },
  now: number,
  oldest?: number,
): UsageRange {
  const stepMs = STEP_MS[q.step];
  if (q.from !== undefined && q.to !== undefined && q.from >= q.to) {
    throw new AdminError("validation_error", "from: must be before to");
  }
  if (q.from !== undefined && q.from > now) {
    throw new AdminError(
      "validation_error",
      `from: must not be in the future (now is ${new Date(now).toISOString()})`,
    );
  }
  const to = q.to === undefined ? floorTo(now, stepMs) + stepMs : floorTo(q.to, stepMs);
  let from = floorTo(q.from ?? to - DEFAULT_SPAN_MS, stepMs);
  if (q.from === undefined && from > now) {
    throw new AdminError(
      "validation_error",
      "to: more than 24 hours ahead, so the range (from defaults to 24 hours before to) starts in the future; give from",
    );
  }
  if (oldest !== undefined) {
    const first = floorTo(oldest, stepMs);
    if (to <= first) {
      throw new AdminError(
        "validation_error",
        `to: the range ends before ${new Date(first).toISOString()}, the oldest usage kept (USAGE_RETENTION_DAYS); nothing older is kept`,
      );
    }
    from = Math.max(from, first);
  }
  // A range shorter than its step (both ends in one step) is that one step.
  const end = to > from ? to : from + stepMs;
  const points = (end - from) / stepMs;
  if (points > MAX_POINTS) {
    throw new AdminError(
      "validation_error",
      `from: the range holds ${points} steps of ${q.step}; at most ${MAX_POINTS} (use a larger step)`,
    );
  }
  return { from, to: end, stepMs };
}

export interface SeriesPoint {
  start: string;
  tokens: number;
  requests: number;
}

export interface Series {
  from: string;
  to: string;
  step_seconds: number;
  total_tokens: number;
  total_requests: number;
  points: SeriesPoint[];
}

/** 5-minute buckets (any order) summed into the range's steps, zero-filled. */
export function toSeries(
  buckets: Iterable<{ bucketStart: number; tokens: number; requests: number }>,
  range: UsageRange,
): Series {
  const { from, to, stepMs } = range;
  const n = Math.round((to - from) / stepMs);
  const tokens = new Array<number>(n).fill(0);
  const requests = new Array<number>(n).fill(0);
  let totalTokens = 0;
  let totalRequests = 0;
  for (const b of buckets) {
    if (b.bucketStart < from || b.bucketStart >= to) continue;
    const i = Math.floor((b.bucketStart - from) / stepMs);
    tokens[i] = (tokens[i] ?? 0) + b.tokens;
    requests[i] = (requests[i] ?? 0) + b.requests;
    totalTokens += b.tokens;
    totalRequests += b.requests;
  }
  const points: SeriesPoint[] = [];
  for (let i = 0; i < n; i++) {
    points.push({
      start: new Date(from + i * stepMs).toISOString(),
      tokens: tokens[i] ?? 0,
      requests: requests[i] ?? 0,
    });
  }
  return {
    from: new Date(from).toISOString(),
    to: new Date(to).toISOString(),
    step_seconds: stepMs / 1000,
    total_tokens: totalTokens,
    total_requests: totalRequests,
    points,
  };
}
