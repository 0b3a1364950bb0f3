/**
 * The rolling 5-hour token quota as a user meets it: requests are admitted
 * while usage is under the limit, then a 429 that the official SDKs report at
 * once instead of retrying for minutes.
 */
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import Anthropic, { type RateLimitError as AnthropicRateLimitError } from "@anthropic-ai/sdk";
import OpenAI, { RateLimitError as OpenAIRateLimitError } from "openai";
import {
  E2E_TIMEOUT_MS,
  expectNoSecretsInLogs,
  type GatewayProcess,
  HOOK_TIMEOUT_MS,
  mockHeaders,
  startGateway,
  waitFor,
} from "../harness/gateway.ts";
import { type MockUpstream, startMockUpstream } from "../harness/mock-upstream.ts";
import { thrown } from "../harness/thrown.ts";

setDefaultTimeout(E2E_TIMEOUT_MS);

const FIVE_HOURS_S = 5 * 60 * 60;
const chat = { model: "glm-4.7", messages: [{ role: "user" as const, content: "hello" }] };
// A cap small enough to fit beside the input estimate in the small keys below.
const message = { ...chat, max_tokens: 8 };

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

/** A fetch that counts the attempts an SDK makes. */
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

/** The gateway's own log lines for 429s of this key (by its display prefix). */
function quotaRefusals(prefix: string): number {
  return gw
    .logLines()
    .filter((l) => l.status === 429 && typeof l.key === "string" && prefix.startsWith(l.key))
    .length;
}

function expectRetryAfter(headers: Headers): void {
  const retryAfter = headers.get("retry-after");
  expect(retryAfter).toMatch(/^\d+$/);
  // The oldest usage ages out 5 hours after its 5-minute bucket started.
  expect(Number(retryAfter)).toBeGreaterThan(FIVE_HOURS_S - 6 * 60);
  expect(Number(retryAfter)).toBeLessThanOrEqual(FIVE_HOURS_S);
  expect(headers.get("x-should-retry")).toBe("false");
}

describe("OpenAI routes", () => {
  test("admitted while usage < limit, then RateLimitError at once, with no retry", async () => {
    const k = await gw.createKey({ name: "quota-openai", limit: 40 });
    const counter = countingFetch();
    // The SDK's default retry policy, untouched: only the gateway's headers stop it.
    const client = gw.openai(k.key, { fetch: counter.fetch });
    const upstreamBefore = mock.requestCount;

    // 0 -> 16 -> 32 are all under 40, so three are admitted; the third, with
    // less room than its input estimate, goes upstream capped to one output
    // token, so it costs 12, not 16.
    const remaining: Array<string | null> = [];
    const totals: Array<number | undefined> = [];
    for (let i = 0; i < 3; i++) {
      const { data, response } = await client.chat.completions.create(chat).withResponse();
      totals.push(data.usage?.total_tokens);
      expect(response.headers.get("x-ratelimit-limit-tokens")).toBe("40");
      remaining.push(response.headers.get("x-ratelimit-remaining-tokens"));
    }
    expect(totals).toEqual([16, 16, 12]);
    expect(remaining).toEqual(["24", "8", "0"]);
    expect(counter.calls).toBe(3);

    const t0 = performance.now();
    const err = await thrown(() => client.chat.completions.create(chat));
    const took = performance.now() - t0;
    expect(err).toBeInstanceOf(OpenAI.RateLimitError);
    const e = err as OpenAIRateLimitError;
    expect(e.status).toBe(429);
    expectRetryAfter(e.headers);
    expect(e.headers.get("x-ratelimit-limit-tokens")).toBe("40");
    expect(e.headers.get("x-ratelimit-remaining-tokens")).toBe("0");
    expect(e.headers.get("x-ratelimit-reset-tokens")).toMatch(/^(\d+h)?(\d+m)?\d+s$/);

    // Reported at once: one attempt, not the SDK's default two retries with backoff.
    expect(counter.calls).toBe(4);
    expect(took).toBeLessThan(1000);
    expect(mock.requestCount - upstreamBefore).toBe(3);
    // The log line is written as the answer goes out; wait for it, not for a guess.
    await waitFor(
      "the refusal's log line",
      () => (quotaRefusals(k.prefix) > 0 ? true : undefined),
      5000,
    );
    expect(quotaRefusals(k.prefix)).toBe(1);

    // A stream is refused the same way, before anything is streamed.
    const err2 = await thrown(() => client.chat.completions.create({ ...chat, stream: true }));
    expect(err2).toBeInstanceOf(OpenAI.RateLimitError);
    expect(counter.calls).toBe(5);
    expect(mock.requestCount - upstreamBefore).toBe(3);

    const s = await gw.stats(k.key);
    expect(s.total_lifetime_tokens).toBe(44);
    expect(s.total_requests).toBe(3);
    expect(s.current_usage.tokens_used_in_current_window).toBe(44);
    expect(s.current_usage.remaining_tokens).toBe(0);

    // The operator raises the limit: the key works again within about a second.
    const raised = await gw.cli(["keys", "update", k.id, "--limit", "100"]);
    expect(raised.code).toBe(0);
    await waitFor(
      "the raised limit to apply",
      async () => {
        try {
          await gw.openai(k.key, { maxRetries: 0 }).chat.completions.create(chat);
          return true;
        } catch (err) {
          if (err instanceof OpenAIRateLimitError) return undefined;
          throw err;
        }
      },
      2000,
      50,
    );
    const after = await gw.stats(k.key);
    expect(after.token_limit_per_5h).toBe(100);
    expect(after.current_usage.tokens_used_in_current_window).toBe(60);
    expect(after.current_usage.remaining_tokens).toBe(40);
  });

  test("streamed usage counts towards the quota", async () => {
    const k = await gw.createKey({ name: "quota-stream", limit: 40 });
    const client = gw.openai(k.key, { maxRetries: 0 });
    const { data, response } = await client.chat.completions
      .create({ ...chat, stream: true }, { headers: mockHeaders({ promptTokens: 35 }) })
      .withResponse();
    expect(response.headers.get("x-ratelimit-limit-tokens")).toBe("40");
    for await (const _ of data) {
      // read to the end
    }
    // 35 + 5 = 40: at the limit, so the next one is refused.
    await gw.statsWhen(k.key, { tokens: 40, requests: 1 }, 1000);
    const err = await thrown(() => client.chat.completions.create({ ...chat, stream: true }));
    expect(err).toBeInstanceOf(OpenAI.RateLimitError);
  });

  test("a key with a limit of 0 is refused from the start, with the longest wait", async () => {
    // A new key may not have a limit of 0: it is made, then its limit set to 0.
    const k = await gw.createKey({ name: "quota-zero", limit: 1 });
    expect((await gw.cli(["keys", "update", k.id, "--limit", "0"])).code).toBe(0);
    const before = mock.requestCount;
    const err = await thrown(() =>
      gw.openai(k.key, { maxRetries: 0 }).chat.completions.create(chat),
    );
    expect(err).toBeInstanceOf(OpenAI.RateLimitError);
    expectRetryAfter((err as OpenAIRateLimitError).headers);
    expect(mock.requestCount).toBe(before);
  });
});

describe("Anthropic routes", () => {
  test("admitted while usage < limit, then RateLimitError at once, with no retry", async () => {
    const k = await gw.createKey({ name: "quota-anthropic", limit: 60 });
    const counter = countingFetch();
    const client = gw.anthropic(k.key, { fetch: counter.fetch });
    const upstreamBefore = mock.requestCount;

    // 21 tokens each: two fit in 60 beside their reservation (input estimate
    // plus max_tokens 8); the third's does not fit in the 18 left.
    const first = await client.messages.create(message).withResponse();
    expect(first.response.headers.get("anthropic-ratelimit-tokens-limit")).toBe("60");
    expect(first.response.headers.get("anthropic-ratelimit-tokens-remaining")).toBe("39");
    const stream = client.messages.stream(message);
    await stream.finalMessage();

    const t0 = performance.now();
    const err = await thrown(() => client.messages.create(message));
    const took = performance.now() - t0;
    expect(err).toBeInstanceOf(Anthropic.RateLimitError);
    const e = err as AnthropicRateLimitError;
    expectRetryAfter(e.headers);
    expect(e.error).toEqual({
      type: "error",
      error: { type: "rate_limit_error", message: expect.any(String) },
    });
    expect(e.headers.get("anthropic-ratelimit-tokens-limit")).toBe("60");
    expect(e.headers.get("anthropic-ratelimit-tokens-remaining")).toBe("18");
    expect(Date.parse(e.headers.get("anthropic-ratelimit-tokens-reset") ?? "")).toBeGreaterThan(
      Date.now() + 60_000,
    );
    expect(counter.calls).toBe(3);
    expect(took).toBeLessThan(1000);
    expect(mock.requestCount - upstreamBefore).toBe(2);
    // The log line is written as the answer goes out; wait for it, not for a guess.
    await waitFor(
      "the refusal's log line",
      () => (quotaRefusals(k.prefix) > 0 ? true : undefined),
      5000,
    );
    expect(quotaRefusals(k.prefix)).toBe(1);

    const s = await gw.stats(k.key);
    expect(s.total_lifetime_tokens).toBe(42);
    expect(s.current_usage.remaining_tokens).toBe(18);
  });

  test("the quota is per key: one key's use leaves another's untouched", async () => {
    const a = await gw.createKey({ name: "quota-a", limit: 30 });
    const b = await gw.createKey({ name: "quota-b", limit: 30 });
    await gw.anthropic(a.key).messages.create(message);
    expect(
      await thrown(() => gw.anthropic(a.key, { maxRetries: 0 }).messages.create(message)),
    ).toBeInstanceOf(Anthropic.RateLimitError);
    const ok = await gw.anthropic(b.key, { maxRetries: 0 }).messages.create(message);
    expect(ok.usage.output_tokens).toBe(5);
  });
});

describe("logs", () => {
  test("over this whole file, no client key and never the master key appear in the logs", () => {
    const all = gw.stdout + gw.stderr;
    expect(all).not.toContain(gw.masterKey);
    for (const secret of gw.secrets) expect(all).not.toContain(secret);
  });
});

test("the secret sweep: every gateway's log is non-empty and holds no master, admin or client key", () => {
  expectNoSecretsInLogs();
});
