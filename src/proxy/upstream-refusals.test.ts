import { describe, expect, test } from "bun:test";
import {
  classifyRefusal,
  parseDuration,
  SHORT_RESET_MS,
  zaiResetTime,
} from "./upstream-refusals.ts";

const NOW = Date.parse("2026-09-29T14:00:00Z");
const h = (o: Record<string, string> = {}) => new Headers(o);
const body = (v: unknown) => JSON.stringify(v);

// The upstreams' error bodies as their documentation gives them.
const ZAI_1302 = body({
  error: {
    code: "1302",
    message:
      "High concurrency usage of this API, please reduce concurrency or contact customer service to increase limits",
  },
});
const ZAI_1308 = body({
  error: {
    code: "1308",
    message: "Usage limit reached for 5 hour. Your limit will reset at 2026-09-29 23:10:05",
  },
});
const OPENAI_RPM = body({
  error: {
    message:
      "Rate limit reached for gpt-4o in organization org-abc on requests per min (RPM): Limit 500, Used 500, Requested 1. Please try again in 120ms.",
    type: "requests",
    param: null,
    code: "rate_limit_exceeded",
  },
});
const OPENAI_QUOTA = body({
  error: {
    message: "You exceeded your current quota, please check your plan and billing details.",
    type: "insufficient_quota",
    param: null,
    code: "insufficient_quota",
  },
});
const ANTHROPIC_429 = body({
  type: "error",
  error: {
    type: "rate_limit_error",
    message: "This request would exceed your organization's rate limit. Please try again later.",
  },
});

describe("classifyRefusal", () => {
  test("Z.AI 1302: busy, with the default short wait", () => {
    expect(classifyRefusal(429, h(), ZAI_1302, NOW)).toMatchObject({ kind: "busy", waitMs: 2000 });
  });

  test("Z.AI 1308: spent until the time it names, read as UTC+8", () => {
    expect(classifyRefusal(429, h(), ZAI_1308, NOW)).toMatchObject({
      kind: "spent",
      until: Date.parse("2026-09-29T15:10:05Z"),
    });
  });

  test("OpenAI rate limit with a short reset is busy; a long one is spent", () => {
    const short = classifyRefusal(429, h({ "x-ratelimit-reset-requests": "1s" }), OPENAI_RPM, NOW);
    expect(short).toMatchObject({ kind: "busy", waitMs: 1000 });
    const long = classifyRefusal(429, h({ "x-ratelimit-reset-tokens": "6h0m0s" }), OPENAI_RPM, NOW);
    expect(long).toMatchObject({ kind: "spent", until: NOW + 6 * 3_600_000 });
  });

  test("OpenAI insufficient_quota is spent, with no time", () => {
    expect(classifyRefusal(429, h(), OPENAI_QUOTA, NOW)).toMatchObject({
      kind: "spent",
      until: null,
    });
  });

  test("Anthropic rate_limit_error: retry-after decides", () => {
    expect(classifyRefusal(429, h({ "retry-after": "7" }), ANTHROPIC_429, NOW)).toMatchObject({
      kind: "busy",
      waitMs: 7000,
    });
    const waitS = SHORT_RESET_MS / 1000 + 3600;
    expect(
      classifyRefusal(429, h({ "retry-after": String(waitS) }), ANTHROPIC_429, NOW),
    ).toMatchObject({ kind: "spent", until: NOW + waitS * 1000 });
  });

  test("anything else passes through unclassified", () => {
    expect(classifyRefusal(500, h(), ZAI_1302, NOW)).toBeNull();
    expect(classifyRefusal(429, h(), "not json", NOW)).toBeNull();
    expect(classifyRefusal(429, h(), body({ error: { code: "9999" } }), NOW)).toBeNull();
  });
});

describe("helpers", () => {
  test("durations", () => {
    expect(parseDuration("6m0s")).toBe(360_000);
    expect(parseDuration("1.5s")).toBe(1500);
    expect(parseDuration("20ms")).toBe(20);
    expect(parseDuration("1h2m3s")).toBe(3_723_000);
    expect(parseDuration("soon")).toBeNull();
  });
  test("Z.AI reset times keep an explicit zone", () => {
    expect(zaiResetTime("reset at 2026-09-10T04:24:36Z")).toBe(Date.parse("2026-09-10T04:24:36Z"));
    expect(zaiResetTime("no time here")).toBeNull();
  });
});
