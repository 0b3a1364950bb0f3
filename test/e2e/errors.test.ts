/**
 * Errors as the official SDKs see them: every failure answers in the route's
 * dialect with the right status, so each SDK raises its proper exception class.
 */
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import Anthropic, { type APIError as AnthropicAPIError } from "@anthropic-ai/sdk";
import OpenAI, { type APIError as OpenAIAPIError } from "openai";
import {
  E2E_TIMEOUT_MS,
  expectNoSecretsInLogs,
  freePort,
  type GatewayProcess,
  HOOK_TIMEOUT_MS,
  mockHeaders,
  startGateway,
  waitFor,
} from "../harness/gateway.ts";
import { type MockUpstream, startMockUpstream } from "../harness/mock-upstream.ts";
import { thrown } from "../harness/thrown.ts";

setDefaultTimeout(E2E_TIMEOUT_MS);

const MAX_BODY = 1024;
const TIMEOUT_MS = 1000;
const chat = { model: "glm-4.7", messages: [{ role: "user" as const, content: "hello" }] };
const message = { ...chat, max_tokens: 32 };

let mock: MockUpstream;
let gw: GatewayProcess;

beforeAll(async () => {
  mock = await startMockUpstream();
  gw = await startGateway({
    mock,
    env: { MAX_BODY_BYTES: String(MAX_BODY), UPSTREAM_TIMEOUT_MS: String(TIMEOUT_MS) },
  });
}, HOOK_TIMEOUT_MS);

afterAll(async () => {
  await gw?.close();
  await mock?.stop();
}, HOOK_TIMEOUT_MS);

function expectOpenaiBody(body: unknown): void {
  expect(body).toEqual({
    error: { message: expect.any(String), type: expect.any(String), code: expect.anything() },
  });
}

function expectAnthropicBody(body: unknown, type?: string): void {
  expect(body).toEqual({
    type: "error",
    error: { type: type ?? expect.any(String), message: expect.any(String) },
  });
}

async function post(path: string, init: RequestInit): Promise<{ status: number; body: unknown }> {
  const res = await gw.fetch(path, { method: "POST", ...init });
  const text = await res.text();
  let body: unknown = text;
  try {
    body = JSON.parse(text);
  } catch {
    // keep the text: the assertion on the body will show it
  }
  return { status: res.status, body };
}

describe("keys", () => {
  test("no key: 401 AuthenticationError from both SDKs, and nothing was sent as a key", async () => {
    const sent: Headers[] = [];
    const spy = (url: string | URL | Request, init?: RequestInit) => {
      sent.push(new Headers(init?.headers));
      return fetch(url, init);
    };
    const openai = new OpenAI({
      baseURL: `${gw.url}/v1`,
      apiKey: "unused",
      defaultHeaders: { Authorization: null },
      maxRetries: 0,
      fetch: spy,
    });
    const e1 = await thrown(() => openai.chat.completions.create(chat));
    expect(e1).toBeInstanceOf(OpenAI.AuthenticationError);
    expect((e1 as OpenAIAPIError).status).toBe(401);

    const anthropic = new Anthropic({
      baseURL: gw.url,
      apiKey: null,
      defaultHeaders: { Authorization: null, "x-api-key": null },
      maxRetries: 0,
      fetch: spy,
    });
    const e2 = await thrown(() => anthropic.messages.create(message));
    expect(e2).toBeInstanceOf(Anthropic.AuthenticationError);
    expect((e2 as AnthropicAPIError).status).toBe(401);

    expect(sent).toHaveLength(2);
    for (const h of sent) {
      expect(h.get("authorization")).toBeNull();
      expect(h.get("x-api-key")).toBeNull();
    }

    const raw1 = await post("/v1/chat/completions", { body: JSON.stringify(chat) });
    expect(raw1.status).toBe(401);
    expectOpenaiBody(raw1.body);
    const raw2 = await post("/v1/messages", { body: JSON.stringify(message) });
    expect(raw2.status).toBe(401);
    expectAnthropicBody(raw2.body, "authentication_error");
  });

  test("unknown key: 401 AuthenticationError from both SDKs", async () => {
    const made_up = `pk_${"A".repeat(43)}`;
    const e1 = await thrown(() =>
      gw.openai(made_up, { maxRetries: 0 }).chat.completions.create(chat),
    );
    expect(e1).toBeInstanceOf(OpenAI.AuthenticationError);
    expectOpenaiBody({ error: (e1 as OpenAIAPIError).error });
    const e2 = await thrown(() =>
      gw.anthropic(made_up, { maxRetries: 0 }).messages.create(message),
    );
    expect(e2).toBeInstanceOf(Anthropic.AuthenticationError);
    expectAnthropicBody((e2 as AnthropicAPIError).error, "authentication_error");
  });

  test("expired key: 403 PermissionDeniedError from both SDKs", async () => {
    // A new key may not expire in the past: it is made, then its expiry moved back.
    const k = await gw.createKey({ name: "expired", limit: 1000 });
    expect((await gw.cli(["keys", "update", k.id, "--expires", "2020-01-01"])).code).toBe(0);
    const before = mock.requestCount;
    const e1 = await thrown(() =>
      gw.openai(k.key, { maxRetries: 0 }).chat.completions.create(chat),
    );
    expect(e1).toBeInstanceOf(OpenAI.PermissionDeniedError);
    expect((e1 as OpenAIAPIError).status).toBe(403);
    const e2 = await thrown(() => gw.anthropic(k.key, { maxRetries: 0 }).messages.create(message));
    expect(e2).toBeInstanceOf(Anthropic.PermissionDeniedError);
    expectAnthropicBody((e2 as AnthropicAPIError).error, "permission_error");
    expect(mock.requestCount).toBe(before);
    // Its holder can still look at /stats, which says it expired.
    const s = await gw.stats(k.key);
    expect(s.is_expired).toBe(true);
    expect(s.total_requests).toBe(0);
  });
});

describe("bodies", () => {
  test("malformed JSON: 400 in each dialect's shape, nothing forwarded", async () => {
    const k = await gw.createKey({ name: "bad-json", limit: 1000 });
    const before = mock.requestCount;
    const headers = { authorization: `Bearer ${k.key}`, "content-type": "application/json" };
    const r1 = await post("/v1/chat/completions", { headers, body: '{"model": "glm-4.7",' });
    expect(r1.status).toBe(400);
    expectOpenaiBody(r1.body);
    const r2 = await post("/v1/messages", { headers, body: '{"model": "glm-4.7",' });
    expect(r2.status).toBe(400);
    expectAnthropicBody(r2.body, "invalid_request_error");
    expect(mock.requestCount).toBe(before);
  });

  for (const route of ["/v1/chat/completions", "/v1/messages"]) {
    test(`body over MAX_BODY_BYTES on ${route}: 413, declared or chunked`, async () => {
      const k = await gw.createKey({ name: `big-${route}`, limit: 1000 });
      const expectShape = (body: unknown) =>
        route === "/v1/messages"
          ? expectAnthropicBody(body, "request_too_large")
          : expectOpenaiBody(body);
      const headers = { authorization: `Bearer ${k.key}`, "content-type": "application/json" };
      const big = JSON.stringify({ ...chat, padding: "x".repeat(MAX_BODY * 3) });
      const before = mock.requestCount;

      // Declared with Content-Length.
      const declared = await post(route, { headers, body: big });
      expect(declared.status).toBe(413);
      expectShape(declared.body);

      // Chunked: no Content-Length, the size is only known while reading.
      const bytes = new TextEncoder().encode(big);
      let at = 0;
      const stream = new ReadableStream<Uint8Array>({
        pull(controller) {
          if (at >= bytes.byteLength) {
            controller.close();
            return;
          }
          controller.enqueue(bytes.slice(at, at + 256));
          at += 256;
        },
      });
      const chunked = await post(route, {
        headers,
        body: stream,
        duplex: "half",
      } as RequestInit);
      expect(chunked.status).toBe(413);
      expectShape(chunked.body);

      // Under the limit is fine, declared or chunked.
      const small = JSON.stringify({ ...chat, max_tokens: 32 });
      expect(small.length).toBeLessThan(MAX_BODY);
      const ok = await post(route, { headers, body: small });
      expect(ok.status).toBe(200);
      const smallChunks = [small.slice(0, 40), small.slice(40)].map((x) =>
        new TextEncoder().encode(x),
      );
      const okChunked = await post(route, {
        headers,
        body: new ReadableStream<Uint8Array>({
          pull(controller) {
            const next = smallChunks.shift();
            if (next) controller.enqueue(next);
            else controller.close();
          },
        }),
        duplex: "half",
      } as RequestInit);
      expect(okChunked.status).toBe(200);
      expect(mock.requestCount).toBe(before + 2);
    });
  }

  test("a body over the limit is a 413 to the SDKs too, and is not retried", async () => {
    const k = await gw.createKey({ name: "big-sdk", limit: 1000 });
    const huge = "x".repeat(MAX_BODY * 4);
    const before = mock.requestCount;
    const e1 = await thrown(() =>
      gw.openai(k.key).chat.completions.create({
        ...chat,
        messages: [{ role: "user", content: huge }],
      }),
    );
    expect(e1).toBeInstanceOf(OpenAI.APIError);
    expect((e1 as OpenAIAPIError).status).toBe(413);
    const e2 = await thrown(() =>
      gw
        .anthropic(k.key)
        .messages.create({ ...message, messages: [{ role: "user", content: huge }] }),
    );
    expect(e2).toBeInstanceOf(Anthropic.APIError);
    expect((e2 as AnthropicAPIError).status).toBe(413);
    expectAnthropicBody((e2 as AnthropicAPIError).error, "request_too_large");
    expect(mock.requestCount).toBe(before);
    const refusals = () => gw.logLines().filter((l) => l.status === 413 && l.key === k.prefix);
    // Log lines are written as the answers go out; wait for them, not for a guess.
    await waitFor(
      "both refusals' log lines",
      () => (refusals().length >= 2 ? true : undefined),
      5000,
    );
    expect(refusals()).toHaveLength(2);
  });

  test("client mistakes of every kind get a 4xx, never a 500, and reach no upstream", async () => {
    const k = await gw.createKey({ name: "mistakes", limit: 1000 });
    const auth = { authorization: `Bearer ${k.key}` };
    const json = { ...auth, "content-type": "application/json" };
    const cases: Array<[string, string, RequestInit]> = [
      ["array body", "/v1/chat/completions", { method: "POST", headers: json, body: "[1,2]" }],
      ["string body", "/v1/messages", { method: "POST", headers: json, body: '"hi"' }],
      ["empty body", "/v1/chat/completions", { method: "POST", headers: json, body: "" }],
      ["no body", "/v1/messages", { method: "POST", headers: json }],
      [
        "invalid UTF-8",
        "/v1/chat/completions",
        { method: "POST", headers: json, body: new Uint8Array([0x7b, 0xff, 0xfe, 0x7d]) },
      ],
      [
        "junk as text/plain",
        "/v1/messages",
        { method: "POST", headers: { ...auth, "content-type": "text/plain" }, body: "not json" },
      ],
      ["unknown route", "/v2/chat/completions", { method: "POST", headers: json, body: "{}" }],
      // (GET / is no mistake: it sends people to /usage.)
      ["root, wrong method", "/", { method: "DELETE" }],
      [
        "Basic auth",
        "/v1/chat/completions",
        { method: "POST", headers: { authorization: "Basic dXNlcjpwYXNz" }, body: "{}" },
      ],
      [
        "odd key characters",
        "/v1/messages",
        { method: "POST", headers: { "x-api-key": 'pk_"<script>{}\\' }, body: "{}" },
      ],
      [
        "very long key",
        "/v1/chat/completions",
        { method: "POST", headers: { authorization: `Bearer pk_${"z".repeat(4000)}` }, body: "{}" },
      ],
      ["empty query key", "/v1/chat/completions?api_key=", { method: "POST", body: "{}" }],
      ["stats without key", "/stats", { method: "GET" }],
      ["stats with unknown key", "/stats", { method: "GET", headers: { "x-api-key": "pk_nope" } }],
    ];
    const before = mock.requestCount;
    const seen: string[] = [];
    for (const [name, path, init] of cases) {
      const res = await gw.fetch(path, init);
      const body: unknown = await res.json().catch(() => "(not JSON)");
      seen.push(`${name}: ${res.status}`);
      expect(`${name}: ${res.status >= 400 && res.status < 500}`).toBe(`${name}: true`);
      if (path.startsWith("/v1/messages")) expectAnthropicBody(body);
      else expectOpenaiBody(body);
    }
    expect(seen).toHaveLength(cases.length);
    expect(mock.requestCount).toBe(before);
    expect(gw.stdout).not.toContain('"status":500');
  });
});

describe("upstream failures", () => {
  test("upstream 400 and 500 pass through with status and body; nothing is charged", async () => {
    const k = await gw.createKey({ name: "upstream-errors", limit: 1000 });
    const openai = gw.openai(k.key, { maxRetries: 0 });
    const anthropic = gw.anthropic(k.key, { maxRetries: 0 });

    const o400 = await thrown(() =>
      openai.chat.completions.create(chat, { headers: mockHeaders({ status: 400 }) }),
    );
    expect(o400).toBeInstanceOf(OpenAI.BadRequestError);
    expect((o400 as OpenAIAPIError).error).toEqual({
      message: "mock error 400",
      type: "invalid_request_error",
      code: "400",
    });
    const o500 = await thrown(() =>
      openai.chat.completions.create(
        { ...chat, stream: true },
        { headers: mockHeaders({ status: 500 }) },
      ),
    );
    expect(o500).toBeInstanceOf(OpenAI.InternalServerError);
    expect((o500 as OpenAIAPIError).status).toBe(500);
    expect((o500 as OpenAIAPIError).error).toEqual({
      message: "mock error 500",
      type: "api_error",
      code: "500",
    });

    const a400 = await thrown(() =>
      anthropic.messages.create(message, { headers: mockHeaders({ status: 400 }) }),
    );
    expect(a400).toBeInstanceOf(Anthropic.BadRequestError);
    expect((a400 as AnthropicAPIError).error).toEqual({
      type: "error",
      error: { type: "invalid_request_error", message: "mock error 400" },
    });
    const a500 = await thrown(() =>
      anthropic.messages.create(
        { ...message, stream: true },
        { headers: mockHeaders({ status: 500 }) },
      ),
    );
    expect(a500).toBeInstanceOf(Anthropic.InternalServerError);
    expect((a500 as AnthropicAPIError).status).toBe(500);

    await Bun.sleep(200);
    const s = await gw.stats(k.key);
    expect(s.total_lifetime_tokens).toBe(0);
    expect(s.current_usage.tokens_used_in_current_window).toBe(0);
  });

  test("upstream slower than UPSTREAM_TIMEOUT_MS: 504 in each dialect, nothing charged", async () => {
    const k = await gw.createKey({ name: "slow-upstream", limit: 1000 });
    const slow = { headers: mockHeaders({ delayMs: TIMEOUT_MS * 3 }) };
    const t0 = performance.now();
    const e1 = await thrown(() =>
      gw.openai(k.key, { maxRetries: 0 }).chat.completions.create(chat, slow),
    );
    const took = performance.now() - t0;
    expect(e1).toBeInstanceOf(OpenAI.APIError);
    expect((e1 as OpenAIAPIError).status).toBe(504);
    expectOpenaiBody({ error: (e1 as OpenAIAPIError).error });
    expect(took).toBeGreaterThan(TIMEOUT_MS * 0.8);
    expect(took).toBeLessThan(TIMEOUT_MS * 2.5);

    const t1 = performance.now();
    const e2 = await thrown(() =>
      gw.anthropic(k.key, { maxRetries: 0 }).messages.create({ ...message, stream: true }, slow),
    );
    expect(e2).toBeInstanceOf(Anthropic.APIError);
    expect((e2 as AnthropicAPIError).status).toBe(504);
    expectAnthropicBody((e2 as AnthropicAPIError).error);

    // Checked only after the mock would have answered (with usage), had the
    // gateway still been waiting for it: "nothing charged" must hold then too.
    await Bun.sleep(Math.max(0, t1 + TIMEOUT_MS * 3 + 500 - performance.now()));
    expect((await gw.stats(k.key)).total_lifetime_tokens).toBe(0);
  });

  test("UPSTREAM_TIMEOUT_MS bounds the first byte only: a longer pause mid-stream is fine", async () => {
    const k = await gw.createKey({ name: "pause-after-first-byte", limit: 1000 });
    const stream = await gw
      .openai(k.key, { maxRetries: 0 })
      .chat.completions.create(
        { ...chat, stream: true },
        { headers: mockHeaders({ completionTokens: 3, pauseMs: TIMEOUT_MS * 2 }) },
      );
    let text = "";
    for await (const c of stream) text += c.choices[0]?.delta.content ?? "";
    expect(text).toBe("tok0 tok1 tok2 ");
    await gw.statsWhen(k.key, { tokens: 14, requests: 1 }, 1000);
  });

  test("upstream dropping mid-stream: the client gets an error, never a clean-looking end", async () => {
    const k = await gw.createKey({ name: "dropped", limit: "1M" });
    // Meanwhile another stream through the same gateway must not notice a thing.
    const bystander = (async () => {
      const stream = await gw
        .openai(k.key, { maxRetries: 0 })
        .chat.completions.create(
          { ...chat, stream: true },
          { headers: mockHeaders({ completionTokens: 4, chunkDelayMs: 150 }) },
        );
      let text = "";
      for await (const c of stream) text += c.choices[0]?.delta.content ?? "";
      return text;
    })();
    const drop = { headers: mockHeaders({ completionTokens: 6, dropAfter: 3, chunkDelayMs: 30 }) };
    let got = "";
    const e1 = await thrown(async () => {
      const stream = await gw
        .openai(k.key, { maxRetries: 0 })
        .chat.completions.create({ ...chat, stream: true }, drop);
      for await (const c of stream) got += c.choices[0]?.delta.content ?? "";
    });
    expect(e1).toBeInstanceOf(Error);
    expect(got).toBe("tok0 tok1 tok2 ");

    const events: string[] = [];
    const e2 = await thrown(async () => {
      const stream = await gw
        .anthropic(k.key, { maxRetries: 0 })
        .messages.create({ ...message, stream: true }, drop);
      for await (const ev of stream) events.push(ev.type);
    });
    expect(e2).toBeInstanceOf(Error);
    expect(events.filter((t) => t === "content_block_delta")).toHaveLength(3);
    expect(events).not.toContain("message_stop");
    expect(await bystander).toBe("tok0 tok1 tok2 tok3 ");
  });

  test("upstream unreachable: 502 in each dialect, nothing charged", async () => {
    const closed = `http://127.0.0.1:${freePort()}`;
    const down = await startGateway({
      env: { UPSTREAM_OPENAI_URL: `${closed}/v4`, UPSTREAM_ANTHROPIC_URL: `${closed}/anthropic` },
    });
    try {
      const k = await down.createKey({ name: "unreachable", limit: 1000 });
      const e1 = await thrown(() =>
        down.openai(k.key, { maxRetries: 0 }).chat.completions.create(chat),
      );
      expect(e1).toBeInstanceOf(OpenAI.InternalServerError);
      expect((e1 as OpenAIAPIError).status).toBe(502);
      expectOpenaiBody({ error: (e1 as OpenAIAPIError).error });
      const e2 = await thrown(() =>
        down.anthropic(k.key, { maxRetries: 0 }).messages.create({ ...message, stream: true }),
      );
      expect(e2).toBeInstanceOf(Anthropic.InternalServerError);
      expect((e2 as AnthropicAPIError).status).toBe(502);
      expectAnthropicBody((e2 as AnthropicAPIError).error);
      expect(
        JSON.stringify([(e1 as OpenAIAPIError).error, (e2 as AnthropicAPIError).error]),
      ).not.toContain(down.masterKey);
      await Bun.sleep(200);
      expect((await down.stats(k.key)).total_lifetime_tokens).toBe(0);
      const all = down.stdout + down.stderr;
      expect(all).not.toContain(down.masterKey);
      expect(all).not.toContain(k.key);
    } finally {
      await down.close();
    }
  });
});

describe("no upstream key configured", () => {
  test("health and stats still answer; proxied calls get 503 in their dialect", async () => {
    const bare = await startGateway({ mock, env: { UPSTREAM_API_KEY: undefined } });
    try {
      const k = await bare.createKey({ name: "no-upstream-key", limit: 1000 });
      expect((await bare.fetch("/health")).status).toBe(200);
      expect((await bare.stats(k.key)).total_requests).toBe(0);
      const before = mock.requestCount;
      const e1 = await thrown(() =>
        bare.openai(k.key, { maxRetries: 0 }).chat.completions.create(chat),
      );
      expect((e1 as OpenAIAPIError).status).toBe(503);
      expectOpenaiBody({ error: (e1 as OpenAIAPIError).error });
      const e2 = await thrown(() =>
        bare.anthropic(k.key, { maxRetries: 0 }).messages.create(message),
      );
      expect((e2 as AnthropicAPIError).status).toBe(503);
      expectAnthropicBody((e2 as AnthropicAPIError).error);
      expect(mock.requestCount).toBe(before);
    } finally {
      await bare.close();
    }
  });
});

describe("logs", () => {
  test("over this whole file, no client key and never the master key appear in the logs", () => {
    expect(gw.secrets.length).toBeGreaterThan(5);
    const all = gw.stdout + gw.stderr;
    expect(all).not.toContain(gw.masterKey);
    for (const secret of gw.secrets) expect(all).not.toContain(secret);
  });
});

test("the secret sweep: every gateway's log is non-empty and holds no master, admin or client key", () => {
  expectNoSecretsInLogs();
});
