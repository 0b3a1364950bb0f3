/**
 * A key holder who does not cooperate cannot overdraw a key: each request
 * reserves its input estimate plus its output cap until it is charged, the
 * key's requests in flight see each other's reservations, a key may be held
 * to a number of requests in flight, and streams are charged from their last
 * usage report. Each refusal reaches the official SDKs as their own
 * RateLimitError.
 */
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import Anthropic from "@anthropic-ai/sdk";
import OpenAI from "openai";
import {
  E2E_TIMEOUT_MS,
  type GatewayProcess,
  HOOK_TIMEOUT_MS,
  mockHeaders,
  newTag,
  startGateway,
  waitFor,
} from "../harness/gateway.ts";
import { type MockUpstream, startMockUpstream } from "../harness/mock-upstream.ts";
import { type TestDatabase, testPostgres } from "../harness/postgres.ts";
import { thrown } from "../harness/thrown.ts";

// Explicit, for two busy cores: the runner's 5 s default measures the machine.
setDefaultTimeout(E2E_TIMEOUT_MS);

const messages = [{ role: "user" as const, content: "hello" }];

/** Spends exactly `tokens` (at least 6) of a key with one whole answer. */
async function spend(gw: GatewayProcess, key: string, tokens: number): Promise<void> {
  const r = await gw.fetch("/v1/chat/completions", {
    method: "POST",
    headers: {
      authorization: `Bearer ${key}`,
      "content-type": "application/json",
      ...mockHeaders({ promptTokens: tokens - 5, completionTokens: 5 }),
    },
    body: JSON.stringify({ model: "glm-4.7", messages, max_tokens: 5 }),
  });
  expect(r.status).toBe(200);
  await r.arrayBuffer();
}

/** The mock's records of requests tagged `tag`. */
const tagged = (mock: MockUpstream, tag: string) =>
  mock.requests.filter((r) => r.headers["x-test-tag"] === tag);

describe("one instance, refusing caps that do not fit (the default)", () => {
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

  test("99 of 100 used: max_tokens 200000 is refused before the upstream, saying what remains", async () => {
    const k = await gw.createKey({ name: "nearly-spent", limit: 100 });
    await spend(gw, k.key, 99);
    await gw.statsWhen(k.key, { tokens: 99, requests: 1 });
    const tag = newTag();
    const client = gw.openai(k.key, { maxRetries: 0 });
    const err = await thrown(() =>
      client.chat.completions.create(
        { model: "glm-4.7", messages, max_tokens: 200_000 },
        { headers: mockHeaders({ promptTokens: 10, completionTokens: 50_000, tag }) },
      ),
    );
    expect(err).toBeInstanceOf(OpenAI.RateLimitError);
    const e = err as InstanceType<typeof OpenAI.RateLimitError>;
    expect(e.message).toContain("only 1 of the key's 100 tokens remain");
    expect(e.message).toContain("max_tokens");
    // The cap can never fit the key's limit: retrying cannot help.
    expect(e.headers?.get("x-should-retry")).toBe("false");
    expect(tagged(mock, tag)).toHaveLength(0);
    const s = await gw.stats(k.key);
    expect(s.total_lifetime_tokens).toBe(99);
    expect(s.current_usage.tokens_used_in_current_window).toBe(99);
  });

  test("the same through the Anthropic SDK: RateLimitError, nothing forwarded", async () => {
    const k = await gw.createKey({ name: "nearly-spent-anthropic", limit: 100 });
    await spend(gw, k.key, 99);
    const tag = newTag();
    const client = gw.anthropic(k.key, { maxRetries: 0 });
    const err = await thrown(() =>
      client.messages.create(
        { model: "glm-4.7", messages, max_tokens: 200_000 },
        // A timeout of our own: the SDK refuses to wait on a cap this size otherwise.
        { headers: mockHeaders({ completionTokens: 50_000, tag }), timeout: 60_000 },
      ),
    );
    expect(err).toBeInstanceOf(Anthropic.RateLimitError);
    expect((err as Error).message).toContain("only 1 of the key's 100 tokens remain");
    expect(tagged(mock, tag)).toHaveLength(0);
    expect((await gw.stats(k.key)).total_lifetime_tokens).toBe(99);
  });

  test("a cap that fits only once usage ages out gets the usual wait, reported at once", async () => {
    const k = await gw.createKey({ name: "later", limit: 1000 });
    await spend(gw, k.key, 600);
    const r = await gw.fetch("/v1/messages", {
      method: "POST",
      headers: { "x-api-key": k.key, "content-type": "application/json" },
      body: JSON.stringify({ model: "glm-4.7", messages, max_tokens: 500 }),
    });
    expect(r.status).toBe(429);
    const body = (await r.json()) as { type: string; error: { type: string; message: string } };
    expect(body.type).toBe("error");
    expect(body.error.type).toBe("rate_limit_error");
    expect(body.error.message).toMatch(/only 400 of the key's 1000 tokens remain/);
    // It fits once the 600 age out: about 5 hours, longer than an SDK should wait.
    expect(Number(r.headers.get("retry-after"))).toBeGreaterThan(4 * 3600);
    expect(r.headers.get("x-should-retry")).toBe("false");
    // A cap that fits is admitted.
    const ok = await gw
      .anthropic(k.key)
      .messages.create({ model: "glm-4.7", messages, max_tokens: 300 });
    expect(ok.usage.output_tokens).toBeGreaterThan(0);
  });

  test("ten parallel requests on a fresh 100-token key: one is admitted, the key is not overdrawn tenfold", async () => {
    const k = await gw.createKey({ name: "parallel", limit: 100 });
    const tag = newTag();
    const client = gw.openai(k.key, { maxRetries: 0 });
    // Each would cost 1,000 tokens: 5 of input, the rest output the model would write.
    const results = await Promise.allSettled(
      Array.from({ length: 10 }, () =>
        client.chat.completions.create(
          { model: "glm-4.7", messages },
          { headers: mockHeaders({ promptTokens: 5, completionTokens: 995, delayMs: 300, tag }) },
        ),
      ),
    );
    const admitted = results.filter((r) => r.status === "fulfilled");
    const refused = results.filter((r) => r.status === "rejected");
    expect(admitted).toHaveLength(1);
    for (const r of refused) {
      expect(r.reason).toBeInstanceOf(OpenAI.RateLimitError);
      expect((r.reason as Error).message).toContain("reserved by its other requests in flight");
      // In-flight requests end soon: a short wait, and the SDK may retry.
      const headers = (r.reason as InstanceType<typeof OpenAI.RateLimitError>).headers;
      expect(headers?.get("retry-after")).toBe("1");
      expect(headers?.get("x-should-retry")).toBeNull();
    }
    expect(tagged(mock, tag)).toHaveLength(1);
    // The one admitted request named no cap; with less than the default
    // reservation left, it went upstream capped to what remained.
    const sent = tagged(mock, tag)[0]?.body as { max_tokens?: number };
    expect(sent.max_tokens).toBeGreaterThan(0);
    expect(sent.max_tokens).toBeLessThan(100);
    const s = await gw.statsWhen(k.key, { tokens: 5 + (sent.max_tokens ?? 0), requests: 1 });
    expect(s.current_usage.tokens_used_in_current_window).toBeLessThanOrEqual(100);
  });

  test("a reservation is released when the upstream fails, and settled to the real usage when charged", async () => {
    const k = await gw.createKey({ name: "settle", limit: 5000 });
    const client = gw.openai(k.key, { maxRetries: 0 });
    // A failed request holds nothing afterwards.
    const failed = await thrown(() =>
      client.chat.completions.create(
        { model: "glm-4.7", messages, max_tokens: 4000 },
        { headers: mockHeaders({ status: 500 }) },
      ),
    );
    expect(failed).toBeInstanceOf(OpenAI.InternalServerError);
    // A charged request holds only what it cost (16), not its 4,000 cap.
    await client.chat.completions.create({ model: "glm-4.7", messages, max_tokens: 4000 });
    const again = await client.chat.completions.create({
      model: "glm-4.7",
      messages,
      max_tokens: 4000,
    });
    expect(again.usage?.total_tokens).toBe(16);
    // The failed call counts as a request that cost nothing.
    expect((await gw.statsWhen(k.key, { tokens: 32, requests: 3 })).total_requests).toBe(3);
  });

  test("an abandoned stream keeps its reservation until it is charged", async () => {
    const k = await gw.createKey({ name: "abandoned", limit: 5000 });
    const controller = new AbortController();
    const res = await gw.fetch("/v1/chat/completions", {
      method: "POST",
      signal: controller.signal,
      headers: {
        authorization: `Bearer ${k.key}`,
        "content-type": "application/json",
        ...mockHeaders({ completionTokens: 10, chunkDelayMs: 150 }),
      },
      body: JSON.stringify({ model: "glm-4.7", messages, stream: true, max_tokens: 4000 }),
    });
    expect(res.status).toBe(200);
    const reader = res.body?.getReader();
    await reader?.read();
    controller.abort();
    // Still draining upstream: its 4,000 are held, so another 4,000 does not fit.
    const blocked = await gw.fetch("/v1/chat/completions", {
      method: "POST",
      headers: { authorization: `Bearer ${k.key}`, "content-type": "application/json" },
      body: JSON.stringify({ model: "glm-4.7", messages, max_tokens: 4000 }),
    });
    expect(blocked.status).toBe(429);
    await blocked.arrayBuffer();
    // Once the drained stream is charged (11 + 10), its reservation is gone.
    await gw.statsWhen(k.key, { tokens: 21, requests: 1 }, 5000);
    const ok = await gw.fetch("/v1/chat/completions", {
      method: "POST",
      headers: { authorization: `Bearer ${k.key}`, "content-type": "application/json" },
      body: JSON.stringify({ model: "glm-4.7", messages, max_tokens: 4000 }),
    });
    expect(ok.status).toBe(200);
    await ok.arrayBuffer();
  });

  test("a key's own --concurrency holds it to that many requests in flight; --no-concurrency lifts it", async () => {
    const k = await gw.createKey({ name: "own-limit", limit: "1M", concurrency: 1 });
    const slow = gw
      .anthropic(k.key)
      .messages.create(
        { model: "glm-4.7", messages, max_tokens: 16 },
        { headers: mockHeaders({ delayMs: 1000 }) },
      );
    await Bun.sleep(300);
    const err = await thrown(() =>
      gw
        .anthropic(k.key, { maxRetries: 0 })
        .messages.create({ model: "glm-4.7", messages, max_tokens: 16 }),
    );
    expect(err).toBeInstanceOf(Anthropic.RateLimitError);
    expect((err as Error).message).toContain("not the token quota");
    await slow;
    expect((await gw.cli(["keys", "update", k.id, "--no-concurrency"])).code).toBe(0);
    await waitFor(
      "the lifted limit to apply",
      async () => {
        const both = await Promise.all(
          [0, 1].map(() =>
            gw.fetch("/v1/chat/completions", {
              method: "POST",
              headers: {
                authorization: `Bearer ${k.key}`,
                "content-type": "application/json",
                ...mockHeaders({ delayMs: 200 }),
              },
              body: JSON.stringify({ model: "glm-4.7", messages, max_tokens: 16 }),
            }),
          ),
        );
        for (const r of both) await r.arrayBuffer();
        return both.every((r) => r.status === 200) || undefined;
      },
      3000,
      50,
    );
  });

  test("a stream with usage on every chunk is charged its last report, and stream_options pass through", async () => {
    const k = await gw.createKey({ name: "continuous", limit: 100_000 });
    const tag = newTag();
    const stream = await gw.openai(k.key).chat.completions.create(
      {
        model: "glm-4.7",
        messages,
        stream: true,
        // vLLM's option; unknown to the SDK's types, passed on untouched.
        stream_options: { include_usage: true, continuous_usage_stats: true } as {
          include_usage: boolean;
        },
      },
      { headers: mockHeaders({ promptTokens: 4, completionTokens: 1000, tag }) },
    );
    let last = 0;
    let first = 0;
    for await (const chunk of stream) {
      if (chunk.usage) {
        if (first === 0) first = chunk.usage.total_tokens;
        last = chunk.usage.total_tokens;
      }
    }
    expect(first).toBe(5);
    expect(last).toBe(1004);
    const sent = tagged(mock, tag)[0]?.body as { stream_options?: Record<string, unknown> };
    expect(sent.stream_options).toEqual({ include_usage: true, continuous_usage_stats: true });
    const s = await gw.statsWhen(k.key, { tokens: 1004, requests: 1 });
    expect(s.current_usage.tokens_used_in_current_window).toBe(1004);
  });
});

describe("one instance, lowering caps that do not fit (OUTPUT_CAP_POLICY=clamp)", () => {
  let mock: MockUpstream;
  let gw: GatewayProcess;

  beforeAll(async () => {
    mock = await startMockUpstream();
    gw = await startGateway({ mock, env: { OUTPUT_CAP_POLICY: "clamp" } });
  }, HOOK_TIMEOUT_MS);
  afterAll(async () => {
    await gw?.close();
    await mock?.stop();
  }, HOOK_TIMEOUT_MS);

  test("max_tokens 200000 on a 1,000-token key goes upstream lowered, and the key ends within its limit", async () => {
    const k = await gw.createKey({ name: "clamped", limit: 1000 });
    const tag = newTag();
    const answer = await gw
      .openai(k.key)
      .chat.completions.create(
        { model: "glm-4.7", messages, max_tokens: 200_000 },
        { headers: mockHeaders({ promptTokens: 10, completionTokens: 50_000, tag }) },
      );
    const sent = tagged(mock, tag)[0]?.body as { max_tokens: number };
    expect(sent.max_tokens).toBeLessThan(1000);
    expect(sent.max_tokens).toBeGreaterThan(900);
    expect(answer.usage?.completion_tokens).toBe(sent.max_tokens);
    const s = await gw.statsWhen(k.key, { tokens: 10 + sent.max_tokens, requests: 1 });
    expect(s.current_usage.tokens_used_in_current_window).toBeLessThanOrEqual(1000);
    // Nothing left to lower a cap to: refused as usual.
    const err = await thrown(() =>
      gw
        .anthropic(k.key, { maxRetries: 0 })
        .messages.create({ model: "glm-4.7", messages, max_tokens: 100 }),
    );
    expect(err).toBeInstanceOf(Anthropic.RateLimitError);
  });
});

describe("requests in flight per key (DEFAULT_KEY_CONCURRENCY=1)", () => {
  let mock: MockUpstream;
  let gw: GatewayProcess;

  beforeAll(async () => {
    mock = await startMockUpstream();
    gw = await startGateway({ mock, env: { DEFAULT_KEY_CONCURRENCY: "1" } });
  }, HOOK_TIMEOUT_MS);
  afterAll(async () => {
    await gw?.close();
    await mock?.stop();
  }, HOOK_TIMEOUT_MS);

  test("a second request while one is in flight: 429 that says concurrency, Retry-After 1, SDK may retry", async () => {
    const k = await gw.createKey({ name: "one-at-a-time", limit: "1M" });
    const other = await gw.createKey({ name: "someone-else", limit: "1M" });
    const slow = gw
      .openai(k.key)
      .chat.completions.create(
        { model: "glm-4.7", messages },
        { headers: mockHeaders({ delayMs: 1500 }) },
      );
    await waitFor(
      "the first request to reach the upstream",
      async () => mock.requestCount > 0 || undefined,
    );
    const oa = await thrown(() =>
      gw.openai(k.key, { maxRetries: 0 }).chat.completions.create({ model: "glm-4.7", messages }),
    );
    expect(oa).toBeInstanceOf(OpenAI.RateLimitError);
    const e = oa as InstanceType<typeof OpenAI.RateLimitError>;
    expect(e.message).toContain("1 request in flight at once");
    expect(e.message).toContain("not the token quota");
    expect(e.headers?.get("retry-after")).toBe("1");
    expect(e.headers?.get("x-should-retry")).toBeNull();
    const an = await thrown(() =>
      gw
        .anthropic(k.key, { maxRetries: 0 })
        .messages.create({ model: "glm-4.7", messages, max_tokens: 16 }),
    );
    expect(an).toBeInstanceOf(Anthropic.RateLimitError);
    // Other keys are not held back by it.
    const free = await gw.openai(other.key).chat.completions.create({ model: "glm-4.7", messages });
    expect(free.usage?.total_tokens).toBe(16);
    expect((await slow).usage?.total_tokens).toBe(16);
    // The slot is free again; an SDK left to its retries gets through while one runs.
    const again = await gw.openai(k.key).chat.completions.create({ model: "glm-4.7", messages });
    expect(again.usage?.total_tokens).toBe(16);
    const line = gw.logLines().find((l) => l.status === 429 && l.quota === "concurrency");
    expect(line).toBeDefined();
    const metrics = await (await gw.fetch("/metrics")).text();
    expect(metrics).toMatch(/tollgate_concurrency_rejections_total\{dialect="openai"\} [1-9]/);
  });
});

const pg = await testPostgres();
if (!pg.shared) {
  process.stderr.write(
    "\n[overdraw tests] SKIPPING the two-instance reservation test: it needs a PostgreSQL server both processes can reach; set TEST_DATABASE_URL\n",
  );
}

describe.skipIf(!pg.shared)("two instances on one PostgreSQL database", () => {
  let mock: MockUpstream;
  let db: TestDatabase;
  let a: GatewayProcess;
  let b: GatewayProcess;

  beforeAll(async () => {
    mock = await startMockUpstream();
    db = await pg.create();
    a = await startGateway({ mock, env: { DATABASE_URL: db.url } });
    b = await startGateway({ mock, env: { DATABASE_URL: db.url } });
  }, HOOK_TIMEOUT_MS);
  afterAll(async () => {
    await a?.close();
    await b?.close();
    await db?.drop();
    await mock?.stop();
  }, HOOK_TIMEOUT_MS);

  test("capped requests alternating between instances never take a key past its limit", async () => {
    const k = await a.createKey({ name: "shared-caps", limit: 1000 });
    const statuses: number[] = [];
    // Each asks for up to 300 and writes all of it: with 11 of input, 311 a request.
    for (let i = 0; i < 8; i++) {
      const gw = i % 2 ? b : a;
      const r = await gw.fetch("/v1/messages", {
        method: "POST",
        headers: {
          "x-api-key": k.key,
          "content-type": "application/json",
          ...mockHeaders({ completionTokens: 300 }),
        },
        body: JSON.stringify({ model: "glm-4.7", messages, max_tokens: 300 }),
      });
      statuses.push(r.status);
      await r.arrayBuffer();
      // Past the documented staleness bound, so each instance has seen the other's usage.
      await Bun.sleep(150);
    }
    // 316 a request (11 + 300 + 5 cache): 3 fit (948), a 4th's 300 + input does not.
    expect(statuses.filter((s) => s === 200)).toHaveLength(3);
    for (const gw of [a, b]) {
      const s = await gw.statsWhen(k.key, { tokens: 3 * 316, requests: 3 }, 2000);
      expect(s.current_usage.tokens_used_in_current_window).toBeLessThanOrEqual(1000);
    }
    // A request far past what remains is refused by either instance.
    const far = await thrown(() =>
      b
        .openai(k.key, { maxRetries: 0 })
        .chat.completions.create({ model: "glm-4.7", messages, max_tokens: 200_000 }),
    );
    expect(far).toBeInstanceOf(OpenAI.RateLimitError);
  }, 30_000);
});
