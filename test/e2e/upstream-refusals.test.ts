/**
 * The upstream's own refusals as each SDK meets them. Too many requests at
 * once (Z.AI 1302, a rate limit that resets within a minute) is tried once
 * more by the gateway, then reaches the client as a retryable 429 with a
 * short Retry-After, which the SDKs retry. A spent plan (Z.AI 1308, a long
 * reset, OpenAI insufficient_quota) is a 429 that says the shared plan is
 * spent until when, with x-should-retry: false, so the SDKs stop at once.
 * Neither is charged to the key nor counted as its own quota.
 */
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import Anthropic from "@anthropic-ai/sdk";
import OpenAI from "openai";
import {
  E2E_TIMEOUT_MS,
  type GatewayProcess,
  HOOK_TIMEOUT_MS,
  startGateway,
} from "../harness/gateway.ts";
import { type MockUpstream, mockPlanResetAt, startMockUpstream } from "../harness/mock-upstream.ts";
import { thrown } from "../harness/thrown.ts";

setDefaultTimeout(E2E_TIMEOUT_MS);

let mock: MockUpstream;
let gw: GatewayProcess;

beforeAll(async () => {
  mock = await startMockUpstream();
  gw = await startGateway({ mock });
}, HOOK_TIMEOUT_MS);

afterAll(async () => {
  await gw?.close();
  await mock?.stop();
}, HOOK_TIMEOUT_MS);

function countingFetch() {
  const counter = {
    calls: 0,
    fetch: (url: string | URL | Request, init?: RequestInit) => {
      counter.calls++;
      return fetch(url, init);
    },
  };
  return counter;
}

const chat = { model: "glm-4.7", messages: [{ role: "user" as const, content: "hi" }] };
const message = { ...chat, max_tokens: 8 };
const refusal = (name: string) => ({ headers: { "x-mock-refusal": name } });

describe("upstream refusals", () => {
  test("OpenAI, Z.AI 1302: tried once more by the gateway, then a retryable RateLimitError the SDK retries", async () => {
    const k = await gw.createKey({ name: "busy-openai", limit: 100_000 });
    const counter = countingFetch();
    const client = gw.openai(k.key, { fetch: counter.fetch, maxRetries: 1 });
    const before = mock.requestCount;
    const err = await thrown(() => client.chat.completions.create(chat, refusal("zai-1302")));
    expect(err).toBeInstanceOf(OpenAI.RateLimitError);
    const e = err as InstanceType<typeof OpenAI.RateLimitError>;
    expect(e.message).toContain("too many requests at once");
    expect(e.message).toContain("not this key's quota");
    expect(Number(e.headers.get("retry-after"))).toBeLessThanOrEqual(2);
    expect(e.headers.get("x-should-retry")).toBeNull();
    // The SDK retried (two attempts), and the gateway tried the upstream twice for each.
    expect(counter.calls).toBe(2);
    expect(mock.requestCount - before).toBe(4);
    // Not charged, and not the key's quota: its window is untouched.
    const s = await gw.stats(k.key);
    expect(s.total_requests).toBe(0);
    expect(s.current_usage.remaining_tokens).toBe(100_000);
  });

  test("OpenAI, Z.AI 1308: the shared plan is spent until the time it names; the SDK stops at once", async () => {
    const k = await gw.createKey({ name: "spent-openai", limit: 100_000 });
    const counter = countingFetch();
    const client = gw.openai(k.key, { fetch: counter.fetch });
    const resetAt = mockPlanResetAt();
    const err = await thrown(() => client.chat.completions.create(chat, refusal("zai-1308")));
    expect(err).toBeInstanceOf(OpenAI.RateLimitError);
    const e = err as InstanceType<typeof OpenAI.RateLimitError>;
    expect(e.message).toContain("shared upstream plan is spent until");
    expect(e.message).toContain(new Date(resetAt).toISOString().slice(0, 16));
    expect(e.headers.get("x-should-retry")).toBe("false");
    const retryAfter = Number(e.headers.get("retry-after"));
    expect(Math.abs(retryAfter - (resetAt - Date.now()) / 1000)).toBeLessThan(60);
    expect(e.headers.get("x-ratelimit-remaining-tokens")).toBe("100000");
    expect(counter.calls).toBe(1);
    const s = await gw.stats(k.key);
    expect(s.total_requests).toBe(0);
  });

  test("OpenAI: a rate limit resetting in hours and insufficient_quota are a spent plan too", async () => {
    const k = await gw.createKey({ name: "spent-openai-2", limit: 100_000 });
    for (const name of ["openai-rate-long", "openai-quota"]) {
      const counter = countingFetch();
      const client = gw.openai(k.key, { fetch: counter.fetch });
      const err = await thrown(() => client.chat.completions.create(chat, refusal(name)));
      expect(err).toBeInstanceOf(OpenAI.RateLimitError);
      expect((err as Error).message).toContain("shared upstream plan is spent");
      expect(counter.calls).toBe(1);
    }
  });

  test("Anthropic: a short rate limit is retried by the SDK; a long one stops it at once", async () => {
    const k = await gw.createKey({ name: "refused-anthropic", limit: 100_000 });
    const short = countingFetch();
    const err = await thrown(() =>
      gw
        .anthropic(k.key, { fetch: short.fetch, maxRetries: 1 })
        .messages.create(message, refusal("anthropic-rate-short")),
    );
    expect(err).toBeInstanceOf(Anthropic.RateLimitError);
    const e = err as InstanceType<typeof Anthropic.RateLimitError>;
    expect(e.error).toMatchObject({ type: "error", error: { type: "rate_limit_error" } });
    expect(e.message).toContain("too many requests at once");
    expect(short.calls).toBe(2);

    const long = countingFetch();
    const err2 = await thrown(() =>
      gw
        .anthropic(k.key, { fetch: long.fetch })
        .messages.create(message, refusal("anthropic-rate-long")),
    );
    expect(err2).toBeInstanceOf(Anthropic.RateLimitError);
    const e2 = err2 as InstanceType<typeof Anthropic.RateLimitError>;
    expect(e2.message).toContain("shared upstream plan is spent until");
    expect(e2.headers.get("x-should-retry")).toBe("false");
    expect(long.calls).toBe(1);

    const z = countingFetch();
    const err3 = await thrown(() =>
      gw.anthropic(k.key, { fetch: z.fetch }).messages.create(message, refusal("zai-1308")),
    );
    expect(err3).toBeInstanceOf(Anthropic.RateLimitError);
    expect(z.calls).toBe(1);
    const s = await gw.stats(k.key);
    expect(s.total_requests).toBe(0);
    expect(s.current_usage.tokens_used_in_current_window).toBe(0);
  });
});
