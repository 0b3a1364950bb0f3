import { describe, expect, test } from "bun:test";
import { BUCKET_MS } from "../time/buckets.ts";
import { AdminError } from "./errors.ts";
import { MAX_POINTS, resolveRange, STEP_MS, STEPS, toSeries } from "./usage-range.ts";

const H = 3_600_000;
const T = Date.parse("2026-03-10T12:34:56.789Z");

describe("resolveRange", () => {
  const cases: Array<[string, Parameters<typeof resolveRange>[0], string, string, number]> = [
    // name, query, from, to, points
    [
      "defaults: 24 h of 1 h steps ending with the current step",
      { step: "1h" },
      "2026-03-09T13:00:00.000Z",
      "2026-03-10T13:00:00.000Z",
      24,
    ],
    ["5 m steps", { step: "5m" }, "2026-03-09T12:35:00.000Z", "2026-03-10T12:35:00.000Z", 288],
    [
      "1 d steps are UTC days",
      { step: "1d", from: T - 30 * 24 * H },
      "2026-02-08T00:00:00.000Z",
      "2026-03-11T00:00:00.000Z",
      31,
    ],
    [
      "explicit ends are floored",
      {
        step: "1h",
        from: Date.parse("2026-03-01T10:59:00Z"),
        to: Date.parse("2026-03-01T13:01:00Z"),
      },
      "2026-03-01T10:00:00.000Z",
      "2026-03-01T13:00:00.000Z",
      3,
    ],
    [
      "both ends in one step give that step",
      {
        step: "1h",
        from: Date.parse("2026-03-01T10:10:00Z"),
        to: Date.parse("2026-03-01T10:50:00Z"),
      },
      "2026-03-01T10:00:00.000Z",
      "2026-03-01T11:00:00.000Z",
      1,
    ],
  ];
  for (const [name, q, from, to, points] of cases) {
    test(name, () => {
      const r = resolveRange(q, T);
      expect(new Date(r.from).toISOString()).toBe(from);
      expect(new Date(r.to).toISOString()).toBe(to);
      expect((r.to - r.from) / r.stepMs).toBe(points);
    });
  }

  test("from must be before to", () => {
    expect(() => resolveRange({ step: "1h", from: T, to: T }, T)).toThrow(
      "from: must be before to",
    );
    expect(() => resolveRange({ step: "1h", from: T, to: T - 1 }, T)).toThrow(AdminError);
  });

  test(`at most ${MAX_POINTS} points, with a hint to use a larger step`, () => {
    expect(() => resolveRange({ step: "5m", from: T - 2000 * 5 * 60_000 }, T)).toThrow(
      /at most 2000/,
    );
    expect(resolveRange({ step: "5m", from: T - 1999 * 5 * 60_000 }, T).from).toBeGreaterThan(0);
  });

  test("retention bounds the start of a range reaching back past it", () => {
    const r = resolveRange({ step: "1h", from: T - 90 * 24 * H }, T, T - 30 * 24 * H);
    expect(new Date(r.from).toISOString()).toBe("2026-02-08T12:00:00.000Z");
  });

  test("a range wholly before the retention period is refused, not moved", () => {
    const oldest = T - 30 * 24 * H;
    const q = { step: "1d" as const, from: Date.parse("2000-01-01"), to: Date.parse("2000-02-01") };
    expect(() => resolveRange(q, T, oldest)).toThrow(AdminError);
    expect(() => resolveRange(q, T, oldest)).toThrow(
      /^to: the range ends before 2026-02-08T00:00:00\.000Z, the oldest usage kept/,
    );
    // Without a retention limit (the admin's view) it is an honest range of zeros.
    expect(resolveRange(q, T).from).toBe(q.from);
  });

  test("a range starting in the future is refused, not moved", () => {
    expect(() => resolveRange({ step: "1h", from: T + 2 * H }, T)).toThrow(
      /^from: must not be in the future/,
    );
    expect(() => resolveRange({ step: "1h", from: T + 1 }, T)).toThrow(AdminError);
    expect(() => resolveRange({ step: "1h", to: T + 48 * H }, T)).toThrow(/^to: .*give from/);
    // Now itself, and a `to` ahead of now, are fine.
    expect(resolveRange({ step: "1h", from: T }, T).from).toBe(Date.parse("2026-03-10T12:00:00Z"));
    expect(resolveRange({ step: "1h", to: T + 2 * H }, T).to).toBe(
      Date.parse("2026-03-10T14:00:00Z"),
    );
  });

  test("every step is a whole number of 5-minute buckets", () => {
    for (const s of STEPS) expect(STEP_MS[s] % BUCKET_MS).toBe(0);
  });
});

describe("toSeries", () => {
  const from = Date.parse("2026-03-10T00:00:00Z");
  const range = { from, to: from + 4 * H, stepMs: H };

  test("sums buckets into steps, zero-fills the gaps, oldest first, ignores what is outside", () => {
    const s = toSeries(
      [
        { bucketStart: from + 2 * H + 5 * 60_000, tokens: 7, requests: 1 },
        { bucketStart: from, tokens: 10, requests: 2 },
        { bucketStart: from + 2 * H, tokens: 3, requests: 1 },
        { bucketStart: from - BUCKET_MS, tokens: 1000, requests: 9 },
        { bucketStart: from + 4 * H, tokens: 1000, requests: 9 },
      ],
      range,
    );
    expect(s.points).toEqual([
      { start: "2026-03-10T00:00:00.000Z", tokens: 10, requests: 2 },
      { start: "2026-03-10T01:00:00.000Z", tokens: 0, requests: 0 },
      { start: "2026-03-10T02:00:00.000Z", tokens: 10, requests: 2 },
      { start: "2026-03-10T03:00:00.000Z", tokens: 0, requests: 0 },
    ]);
    expect(s).toMatchObject({
      from: "2026-03-10T00:00:00.000Z",
      to: "2026-03-10T04:00:00.000Z",
      step_seconds: 3600,
      total_tokens: 20,
      total_requests: 4,
    });
  });

  test("no usage: every point is zero", () => {
    const s = toSeries([], range);
    expect(s.points).toHaveLength(4);
    expect(s.points.every((p) => p.tokens === 0 && p.requests === 0)).toBe(true);
    expect(s.total_tokens).toBe(0);
  });
});
