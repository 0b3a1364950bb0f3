import { describe, expect, test } from "bun:test";
import { WINDOW_MS } from "../time/buckets.ts";
import { goDuration, quotaExceededHeaders, quotaHeaders } from "./headers.ts";
import { windowState } from "./window.ts";

const T0 = Date.UTC(2026, 10, 28, 12, 0, 0);

describe("quota headers", () => {
  test("goDuration", () => {
    expect(goDuration(0)).toBe("0s");
    expect(goDuration(1)).toBe("1s");
    expect(goDuration(61_000)).toBe("1m1s");
    expect(goDuration(WINDOW_MS)).toBe("5h0m0s");
  });

  test("each dialect gets its own header names", () => {
    const s = windowState([{ bucketStart: T0, tokens: 10 }], 100, T0);
    expect(quotaHeaders("openai", s, T0)).toEqual({
      "x-ratelimit-limit-tokens": "100",
      "x-ratelimit-remaining-tokens": "90",
      "x-ratelimit-reset-tokens": "5h0m0s",
    });
    expect(quotaHeaders("anthropic", s, T0)).toEqual({
      "anthropic-ratelimit-tokens-limit": "100",
      "anthropic-ratelimit-tokens-remaining": "90",
      "anthropic-ratelimit-tokens-reset": new Date(T0 + WINDOW_MS).toISOString(),
    });
  });

  test("a long wait says Retry-After in whole seconds and x-should-retry: false", () => {
    const s = windowState([{ bucketStart: T0, tokens: 100 }], 100, T0 + 1500);
    const h = quotaExceededHeaders("openai", s, T0 + 1500, WINDOW_MS);
    expect(h["retry-after"]).toBe(String(Math.ceil((WINDOW_MS - 1500) / 1000)));
    expect(h["x-should-retry"]).toBe("false");
  });

  test("a short wait lets the SDK retry by itself", () => {
    const now = T0 + WINDOW_MS - 30_500;
    const s = windowState([{ bucketStart: T0, tokens: 100 }], 100, now);
    const h = quotaExceededHeaders("anthropic", s, now, WINDOW_MS);
    expect(h["retry-after"]).toBe("31");
    expect(h["x-should-retry"]).toBeUndefined();
  });
});
