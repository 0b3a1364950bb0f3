/**
 * Realistic legacy `apikeys.json` content, as the old gateway wrote it: keys
 * in clear, a fixed usage window per key, sometimes a rolling cache of
 * 5-minute buckets, lifetime totals (some beyond 32 bits).
 */
export interface LegacyFixtureOptions {
  keys: number;
  now: number;
}

const HOUR = 3_600_000;
const BUCKET = 5 * 60_000;

export function legacyKeySecret(i: number): string {
  return `pk_legacy_${String(i).padStart(6, "0")}_${"x".repeat(20)}`;
}

export function makeLegacyFile({ keys, now }: LegacyFixtureOptions) {
  const iso = (t: number) => new Date(t).toISOString();
  const aligned = now - (now % BUCKET);
  return {
    keys: Array.from({ length: keys }, (_, i) => {
      const inWindow = 100 + i;
      const entry: Record<string, unknown> = {
        key: legacyKeySecret(i),
        name: `user ${i}`,
        token_limit_per_5h: 100_000 + i,
        expiry_date: iso(i % 10 === 0 ? now - 24 * HOUR : now + 30 * 24 * HOUR),
        created_at: iso(now - 90 * 24 * HOUR + i),
        last_used: iso(now - 10 * 60_000),
        total_lifetime_tokens: i % 7 === 0 ? 2 ** 33 + i : 5_000 + i,
        usage_windows: [
          // One window inside the 5 hours, one long gone.
          { window_start: iso(now - 2 * HOUR), tokens_used: inWindow },
          { window_start: iso(now - 30 * HOUR), tokens_used: 999 },
        ],
      };
      if (i % 3 === 1) entry.model = "glm-4.5";
      if (i % 2 === 0) {
        entry.rolling_window_cache = {
          buckets: [
            { timestamp: aligned - 2 * HOUR, tokens: inWindow - 40 },
            { timestamp: aligned - HOUR, tokens: 40 },
            { timestamp: aligned - 7 * HOUR, tokens: 999 },
          ],
          runningTotal: inWindow,
          lastUpdated: iso(now - 10 * 60_000),
          windowDurationMs: 5 * HOUR,
          bucketSizeMs: BUCKET,
        };
      }
      return entry;
    }),
  };
}
