import { describe, expect, test } from "bun:test";
import { BUCKET_MS, bucketStartOf, WINDOW_MS, windowUsage } from "../time/buckets.ts";
import { afterCharge, windowState } from "./window.ts";

const T0 = Date.UTC(2026, 10, 28, 12, 0, 0); // a bucket boundary
const MIN = 60_000;

describe("buckets", () => {
  test("bucketStartOf floors to 5 minutes", () => {
    expect(bucketStartOf(T0)).toBe(T0);
    expect(bucketStartOf(T0 + 1)).toBe(T0);
    expect(bucketStartOf(T0 + BUCKET_MS - 1)).toBe(T0);
    expect(bucketStartOf(T0 + BUCKET_MS)).toBe(T0 + BUCKET_MS);
  });

  test("a bucket counts until exactly 5 hours after it started", () => {
    const b = [{ bucketStart: T0, tokens: 100 }];
    expect(windowUsage(b, T0)).toBe(100);
    expect(windowUsage(b, T0 + WINDOW_MS - 1)).toBe(100);
    expect(windowUsage(b, T0 + WINDOW_MS)).toBe(0);
  });

  test("future buckets (clock skew) do not count", () => {
    expect(windowUsage([{ bucketStart: T0 + BUCKET_MS, tokens: 5 }], T0)).toBe(0);
  });

  test("usage ages out bucket by bucket", () => {
    const b = [
      { bucketStart: T0, tokens: 10 },
      { bucketStart: T0 + BUCKET_MS, tokens: 20 },
      { bucketStart: T0 + 2 * BUCKET_MS, tokens: 30 },
    ];
    expect(windowUsage(b, T0 + 2 * BUCKET_MS)).toBe(60);
    expect(windowUsage(b, T0 + WINDOW_MS)).toBe(50);
    expect(windowUsage(b, T0 + WINDOW_MS + BUCKET_MS)).toBe(30);
    expect(windowUsage(b, T0 + WINDOW_MS + 2 * BUCKET_MS)).toBe(0);
  });
});

describe("windowState", () => {
  test("admits while usage is under the limit, even if one request will overshoot", () => {
    const s = windowState([{ bucketStart: T0, tokens: 99 }], 100, T0 + MIN);
    expect(s).toMatchObject({ allowed: true, used: 99, remaining: 1, retryAfterMs: 0 });
  });

  test("refuses at the limit; the wait is until enough buckets age out", () => {
    const now = T0 + 2 * BUCKET_MS + MIN;
    const b = [
      { bucketStart: T0, tokens: 40 },
      { bucketStart: T0 + BUCKET_MS, tokens: 40 },
      { bucketStart: T0 + 2 * BUCKET_MS, tokens: 40 },
    ];
    // 120 used, limit 100: dropping the first bucket (-> 80) is enough.
    let s = windowState(b, 100, now);
    expect(s.allowed).toBe(false);
    expect(s.retryAfterMs).toBe(T0 + WINDOW_MS - now);
    // limit 60: two buckets must go (-> 40).
    s = windowState(b, 60, now);
    expect(s.retryAfterMs).toBe(T0 + BUCKET_MS + WINDOW_MS - now);
    expect(s.remaining).toBe(0);
  });

  test("duplicate bucket starts are merged", () => {
    const s = windowState(
      [
        { bucketStart: T0, tokens: 30 },
        { bucketStart: T0, tokens: 30 },
      ],
      50,
      T0,
    );
    expect(s.used).toBe(60);
    expect(s.retryAfterMs).toBe(WINDOW_MS);
  });

  test("reset is when the newest counted bucket ages out; oldestStart the oldest", () => {
    const b = [
      { bucketStart: T0, tokens: 1 },
      { bucketStart: T0 + BUCKET_MS, tokens: 1 },
    ];
    const s = windowState(b, 10, T0 + BUCKET_MS);
    expect(s.resetAt).toBe(T0 + BUCKET_MS + WINDOW_MS);
    expect(s.oldestStart).toBe(T0);
    const empty = windowState([], 10, T0 + 7);
    expect(empty).toMatchObject({ used: 0, remaining: 10, resetAt: T0 + 7, oldestStart: T0 + 7 });
  });

  test("limit 0 never admits", () => {
    expect(windowState([], 0, T0).allowed).toBe(false);
  });

  test("afterCharge adds the response's own cost", () => {
    const s = windowState([], 100, T0 + MIN);
    const after = afterCharge(s, 30, T0 + MIN);
    expect(after).toMatchObject({
      used: 30,
      remaining: 70,
      resetAt: T0 + WINDOW_MS,
      oldestStart: T0,
    });
    expect(afterCharge(s, 0, T0)).toBe(s);
  });
});
