import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { makeTestApp } from "../test/harness/app.ts";
import { type MockUpstream, startMockUpstream } from "../test/harness/mock-upstream.ts";
import { WINDOW_MS } from "./time/buckets.ts";

let mock: MockUpstream;
let t: Awaited<ReturnType<typeof makeTestApp>>;
let key: string;

beforeAll(async () => {
  mock = await startMockUpstream();
  t = await makeTestApp({
    UPSTREAM_OPENAI_URL: mock.openaiBase,
    UPSTREAM_ANTHROPIC_URL: mock.anthropicBase,
    MAX_BODY_BYTES: "2048",
  });
  key = (await t.newKey()).secret;
});
afterAll(async () => {
  await t.cleanup();
  await mock.stop();
});

const chat = (headers: Record<string, string>, body: string | null = '{"messages":[]}') =>
  t.app.request("/v1/chat/completions", {
    method: "POST",
    headers: { "content-type": "application/json", ...headers },
    body,
  });
const messages = (headers: Record<string, string>, body = '{"max_tokens":5,"messages":[]}') =>
  t.app.request("/v1/messages", {
    method: "POST",
    headers: { "content-type": "application/json", "anthropic-version": "2023-06-01", ...headers },
    body,
  });

describe("errors speak the route's dialect", () => {
  test("no key: 401 in OpenAI and Anthropic shapes", async () => {
    const o = await chat({});
    expect(o.status).toBe(401);
    expect(await o.json()).toMatchObject({
      error: { type: "invalid_request_error", code: "missing_api_key" },
    });
    const a = await messages({});
    expect(a.status).toBe(401);
    expect(await a.json()).toMatchObject({
      type: "error",
      error: { type: "authentication_error" },
    });
  });

  test("odd key strings are refused without a lookup or an echo", async () => {
    for (const odd of [`pk_${"x".repeat(5000)}`, "  ", "'; DROP TABLE api_keys; --", "Bearer"]) {
      const r = await chat({ "x-api-key": odd });
      expect(r.status).toBe(401);
      expect(await r.text()).not.toContain("xxxxxxxx");
    }
    for (const odd of ["pk_ünïcødé", "pk_%00", "%F0%9F%94%91"]) {
      const r = await t.app.request(`/v1/models?api_key=${encodeURIComponent(odd)}`);
      expect(r.status).toBe(401);
    }
    expect(await t.storage.countKeys()).toBeGreaterThan(0);
  });

  test("malformed JSON: 400, and the upstream never sees it", async () => {
    const before = mock.requestCount;
    const o = await chat({ authorization: `Bearer ${key}` }, '{"messages":');
    expect(o.status).toBe(400);
    expect(((await o.json()) as { error: { message: string } }).error.message).toContain(
      "not valid JSON",
    );
    const a = await messages({ "x-api-key": key }, "[1,2]");
    expect(a.status).toBe(400);
    expect(await a.json()).toMatchObject({
      type: "error",
      error: { type: "invalid_request_error" },
    });
    expect(mock.requestCount).toBe(before);
  });

  test("a body over MAX_BODY_BYTES: 413 in dialect", async () => {
    const big = JSON.stringify({ messages: [{ role: "user", content: "x".repeat(4000) }] });
    const o = await chat({ authorization: `Bearer ${key}` }, big);
    expect(o.status).toBe(413);
    const a = await messages({ "x-api-key": key }, big);
    expect(a.status).toBe(413);
    expect(await a.json()).toMatchObject({ error: { type: "request_too_large" } });
  });

  test("unknown routes: 404 JSON", async () => {
    const r = await t.app.request("/nope");
    expect(r.status).toBe(404);
    expect(await r.json()).toMatchObject({ error: { code: "not_found" } });
  });
});

describe("proxying", () => {
  test("the key may come from the api_key query parameter, and is not forwarded", async () => {
    const before = mock.requests.length;
    const r = await t.app.request(`/v1/models?api_key=${key}`);
    expect(r.status).toBe(200);
    expect(mock.requests).toHaveLength(before + 1);
    const seen = mock.requests.at(-1);
    expect(seen?.path).toBe("/v4/models");
    expect(JSON.stringify(seen)).not.toContain(key);
  });

  test("an encoded api_key parameter is not forwarded either; nor are unknown parameters", async () => {
    const before = mock.requests.length;
    const r = await t.app.request(`/v1/models?api%5Fkey=${key}&x=1`);
    expect(r.status).toBe(200);
    expect(mock.requests).toHaveLength(before + 1);
    expect(mock.requests.at(-1)?.path).toBe("/v4/models");
  });

  test("Anthropic's ?beta=true passes", async () => {
    const before = mock.requests.length;
    const r = await t.app.request("/v1/messages/count_tokens?beta=true&other=1", {
      method: "POST",
      headers: { "x-api-key": key, "content-type": "application/json" },
      body: JSON.stringify({ messages: [{ role: "user", content: "hi" }] }),
    });
    expect(mock.requests).toHaveLength(before + 1);
    expect(mock.requests.at(-1)?.path).toBe("/anthropic/v1/messages/count_tokens?beta=true");
    await r.text();
  });

  test("a key's model override holds for odd spellings of the path and content type", async () => {
    const { secret } = await t.newKey({ model: "glm-4.5-air" });
    const send = (path: string, type: string) =>
      t.app.request(path, {
        method: "POST",
        headers: { authorization: `Bearer ${secret}`, "content-type": type },
        body: '{"model":"glm-5-expensive","stream":false,"messages":[]}',
      });
    for (const [path, type] of [
      ["/v1//chat/completions/", "Application/JSON"],
      ["/v1/chat/completions/", "text/plain"],
    ] as const) {
      const before = mock.requests.length;
      const r = await send(path, type);
      expect(r.status).toBe(200);
      // This request's own record, never the one before it.
      expect(mock.requests).toHaveLength(before + 1);
      const seen = mock.requests.at(-1)?.body as { model?: string } | undefined;
      expect(seen?.model).toBe("glm-4.5-air");
    }
    // A path outside the endpoint table is not forwarded at all.
    const before = mock.requests.length;
    expect((await send("/v1/other-endpoint", "text/plain")).status).toBe(404);
    expect(mock.requests).toHaveLength(before);
  });

  test("a body the rules leave alone goes upstream byte for byte, as it came", async () => {
    const sent =
      '{\n  "model": "glm-4.7",\n  "max_tokens": 5,\n  "messages": [ {"role": "user", "content": "a \\"max_tokens\\": 9 é"} ]\n}';
    const r = await messages({ "x-api-key": key }, sent);
    expect(r.status).toBe(200);
    expect(mock.requests.at(-1)?.text).toBe(sent);
    // Changed by the rules (the default model): re-serialised.
    await messages({ "x-api-key": key }, '{ "max_tokens": 5, "messages": [] }');
    expect(mock.requests.at(-1)?.text).toBe('{"max_tokens":5,"messages":[],"model":"glm-4.7"}');
  });

  test("a field the gateway reads, named twice or spelled with escapes, reaches the upstream once, as the gateway read it", async () => {
    const { secret } = await t.newKey({ tokenLimit: 1_000 });
    for (const sent of [
      '{"model":"glm-4.7","max_tokens":100000,"max_tokens":10,"messages":[]}',
      '{"model":"glm-4.7","max\\u005ftokens":100000,"max_tokens":10,"messages":[]}',
      '{"model":"glm-4.7","\\u006dax_tokens":100000,"max_tokens":10,"messages":[]}',
    ]) {
      const r = await messages({ "x-api-key": secret }, sent);
      expect(r.status).toBe(200);
      // The gateway read the last: 10 fits the key's 1,000 tokens.
      expect(mock.requests.at(-1)?.text).toBe('{"model":"glm-4.7","max_tokens":10,"messages":[]}');
    }
  });

  test("a field the gateway reads, written in another case, is refused: an upstream matching keys without case would read it", async () => {
    const before = mock.requests.length;
    for (const sent of [
      '{"model":"glm-4.7","max_tokens":10,"MAX_TOKENS":100000,"messages":[]}',
      '{"model":"glm-4.7","Model":"glm-5","max_tokens":10,"messages":[]}',
    ]) {
      const r = await messages({ "x-api-key": key }, sent);
      expect(r.status).toBe(400);
      expect(((await r.json()) as { error: { message: string } }).error.message).toContain(
        "differently written",
      );
    }
    expect(mock.requests).toHaveLength(before);
  });

  test("a percent-encoded spelling of /v1 is still a proxied call, and /v1 itself is refused as one", async () => {
    const before = mock.requests.length;
    const r = await t.app.request("/%761/chat/completions", {
      method: "POST",
      headers: { authorization: `Bearer ${key}`, "content-type": "application/json" },
      body: '{"model":"glm-4.7","messages":[]}',
    });
    expect(r.status).toBe(200);
    expect(mock.requests).toHaveLength(before + 1);
    expect(mock.requests.at(-1)?.path).toBe("/v4/chat/completions");
    const blocked = async () => (await t.app.request("/metrics")).text();
    const count = (text: string) =>
      Number(/tollgate_blocked_requests_total\{reason="not_found"\} (\d+)/.exec(text)?.[1] ?? 0);
    const was = count(await blocked());
    expect(
      (await t.app.request("/v1", { headers: { authorization: `Bearer ${key}` } })).status,
    ).toBe(404);
    expect(count(await blocked())).toBe(was + 1);
  });

  test("every response carries quota headers and a request id", async () => {
    const r = await chat({ authorization: `Bearer ${key}` });
    expect(r.status).toBe(200);
    expect(r.headers.get("x-ratelimit-limit-tokens")).toBe("1000000");
    expect(Number(r.headers.get("x-ratelimit-remaining-tokens"))).toBeLessThan(1_000_000);
    expect(r.headers.get("x-request-id")).toMatch(/^[0-9a-f-]{36}$/);
    const a = await messages({ "x-api-key": key, "x-request-id": "trace-123" });
    expect(a.headers.get("anthropic-ratelimit-tokens-limit")).toBe("1000000");
    expect(a.headers.get("x-request-id")).toBe("trace-123");
  });
});

describe("quota", () => {
  test("admits under the limit, then 429 until the usage ages out", async () => {
    const { secret } = await t.newKey({ tokenLimit: 20 });
    const auth = { authorization: `Bearer ${secret}` };
    expect((await chat(auth)).status).toBe(200); // 16 used
    // 16 < 20: admitted, but with 4 left it goes upstream capped to 1 output token: 12.
    expect((await chat(auth)).status).toBe(200);
    const refused = await chat(auth);
    expect(refused.status).toBe(429);
    expect(await refused.json()).toMatchObject({
      error: { type: "insufficient_quota", code: "quota_exceeded" },
    });
    expect(Number(refused.headers.get("retry-after"))).toBeGreaterThan(60);
    expect(refused.headers.get("x-should-retry")).toBe("false");
    expect(refused.headers.get("x-ratelimit-remaining-tokens")).toBe("0");

    const stats = await t.app.request("/stats", { headers: auth });
    expect(await stats.json()).toMatchObject({
      current_usage: { tokens_used_in_current_window: 28, remaining_tokens: 0 },
      total_lifetime_tokens: 28,
      total_requests: 2,
    });

    t.time.now += WINDOW_MS;
    expect((await chat(auth)).status).toBe(200);
  });
});

describe("CORS for browser callers (CORS_ORIGINS, default *)", () => {
  test("a page may call the API, /stats and the health probes; a preflight is answered", async () => {
    const origin = { origin: "https://tools.example.com" };
    for (const path of ["/health", "/health/ready", "/stats"]) {
      const res = await t.app.request(path, {
        headers: { ...origin, authorization: `Bearer ${key}` },
      });
      expect(res.headers.get("access-control-allow-origin")).toBe("*");
    }
    const res = await chat({ ...origin, authorization: `Bearer ${key}` });
    expect(res.status).toBe(200);
    expect(res.headers.get("access-control-allow-origin")).toBe("*");
    expect(res.headers.get("access-control-expose-headers")).toContain(
      "x-ratelimit-remaining-tokens",
    );
    const preflight = await t.app.request("/v1/chat/completions", {
      method: "OPTIONS",
      headers: {
        ...origin,
        "access-control-request-method": "POST",
        "access-control-request-headers": "authorization, content-type",
      },
    });
    expect(preflight.status).toBe(204);
    expect(preflight.headers.get("access-control-allow-methods")).toContain("POST");
  });

  test("SDKs and agents send no Origin and get no CORS headers", async () => {
    const res = await chat({ authorization: `Bearer ${key}` });
    expect(res.status).toBe(200);
    expect(res.headers.get("access-control-allow-origin")).toBeNull();
  });
});
