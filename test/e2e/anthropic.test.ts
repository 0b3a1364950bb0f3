/**
 * The Anthropic-compatible side, driven by the official `@anthropic-ai/sdk`
 * against the real gateway process.
 */
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import type Anthropic from "@anthropic-ai/sdk";
import {
  E2E_TIMEOUT_MS,
  expectNoSecretsInLogs,
  type GatewayProcess,
  HOOK_TIMEOUT_MS,
  mockHeaders,
  newTag,
  startGateway,
} from "../harness/gateway.ts";
import {
  type MockUpstream,
  type RecordedRequest,
  startMockUpstream,
} from "../harness/mock-upstream.ts";

setDefaultTimeout(E2E_TIMEOUT_MS);

const messages: Anthropic.MessageParam[] = [{ role: "user", content: "hello" }];
// The mock reports input 11, output 5, cache creation 3, cache read 2 by default.
const CHARGE = 11 + 5 + 3 + 2;

let mock: MockUpstream;
let gw: GatewayProcess;

beforeAll(async () => {
  mock = await startMockUpstream();
  gw = await startGateway({ mock, env: { DEFAULT_MODEL: "glm-anthropic-default" } });
}, HOOK_TIMEOUT_MS);

afterAll(async () => {
  await gw?.close();
  await mock?.stop();
}, HOOK_TIMEOUT_MS);

function recorded(tag: string): RecordedRequest {
  const found = mock.requests.filter((r) => r.headers["x-test-tag"] === tag);
  expect(found).toHaveLength(1);
  return found[0] as RecordedRequest;
}

function text(content: Anthropic.ContentBlock[]): string {
  return content.map((b) => (b.type === "text" ? b.text : "")).join("");
}

describe("messages", () => {
  test("not streamed: the answer arrives and input+output+cache tokens are charged", async () => {
    const k = await gw.createKey({ name: "an-plain", limit: 1000 });
    const { data, response } = await gw
      .anthropic(k.key)
      .messages.create({ model: "glm-4.7", max_tokens: 64, messages })
      .withResponse();
    expect(text(data.content)).toBe("tok0 tok1 tok2 tok3 tok4 ");
    expect(data.usage.input_tokens).toBe(11);
    expect(data.usage.output_tokens).toBe(5);

    expect(response.headers.get("anthropic-ratelimit-tokens-limit")).toBe("1000");
    expect(response.headers.get("anthropic-ratelimit-tokens-remaining")).toBe(
      String(1000 - CHARGE),
    );
    const reset = Date.parse(response.headers.get("anthropic-ratelimit-tokens-reset") ?? "");
    expect(reset).toBeGreaterThan(Date.now());

    const s = await gw.statsWhen(k.key, { tokens: CHARGE, requests: 1 }, 1000);
    expect(s.current_usage.tokens_used_in_current_window).toBe(CHARGE);
    expect(s.current_usage.remaining_tokens).toBe(1000 - CHARGE);
  });

  test("streamed with messages.stream(): text arrives and the full usage is charged", async () => {
    const k = await gw.createKey({ name: "an-stream", limit: 1000 });
    const stream = gw
      .anthropic(k.key)
      .messages.stream(
        { model: "glm-4.7", max_tokens: 64, messages },
        { headers: mockHeaders({ completionTokens: 7 }) },
      );
    let deltas = "";
    stream.on("text", (t) => {
      deltas += t;
    });
    const final = await stream.finalMessage();
    expect(deltas).toBe("tok0 tok1 tok2 tok3 tok4 tok5 tok6 ");
    expect(final.usage.input_tokens).toBe(11);
    expect(final.usage.output_tokens).toBe(7);
    expect(final.usage.cache_creation_input_tokens).toBe(3);
    expect(final.usage.cache_read_input_tokens).toBe(2);
    const s = await gw.statsWhen(k.key, { tokens: 11 + 7 + 3 + 2, requests: 1 }, 1000);
    expect(s.current_usage.tokens_used_in_current_window).toBe(23);
    expect(s.current_usage.remaining_tokens).toBe(977);
  });

  test("streamed with create({ stream: true }): every event arrives, quota headers are set", async () => {
    const k = await gw.createKey({ name: "an-stream-raw", limit: 500 });
    const { data: stream, response } = await gw
      .anthropic(k.key)
      .messages.create({ model: "glm-4.7", max_tokens: 64, messages, stream: true })
      .withResponse();
    expect(response.headers.get("content-type")).toContain("text/event-stream");
    expect(response.headers.get("anthropic-ratelimit-tokens-limit")).toBe("500");
    expect(Number(response.headers.get("anthropic-ratelimit-tokens-remaining"))).toBeGreaterThan(0);
    const types: string[] = [];
    for await (const ev of stream) types.push(ev.type);
    expect(types[0]).toBe("message_start");
    expect(types.at(-2)).toBe("message_delta");
    expect(types.at(-1)).toBe("message_stop");
    expect(types.filter((t) => t === "content_block_delta")).toHaveLength(5);
    await gw.statsWhen(k.key, { tokens: CHARGE, requests: 1 }, 1000);
  });

  test("count_tokens answers and charges no tokens", async () => {
    const k = await gw.createKey({ name: "an-count", limit: 1000 });
    const tag = newTag();
    const count = await gw
      .anthropic(k.key)
      .messages.countTokens({ model: "glm-4.7", messages }, { headers: mockHeaders({ tag }) });
    expect(count.input_tokens).toBe(11);
    expect(recorded(tag).path).toBe("/anthropic/v1/messages/count_tokens");
    await Bun.sleep(200);
    const s = await gw.stats(k.key);
    expect(s.total_lifetime_tokens).toBe(0);
    expect(s.current_usage.tokens_used_in_current_window).toBe(0);
    expect(s.current_usage.remaining_tokens).toBe(1000);
  });
});

describe("what the upstream sees", () => {
  test("x-api-key is the operator's, anthropic-version and anthropic-beta pass through", async () => {
    const k = await gw.createKey({ name: "an-headers", limit: 1000 });
    let sent: Headers | undefined;
    const client = gw.anthropic(k.key, {
      fetch: (url: string | URL | Request, init?: RequestInit) => {
        sent = new Headers(init?.headers);
        return fetch(url, init);
      },
    });
    const tag = newTag();
    await client.beta.messages.create(
      { model: "glm-4.7", max_tokens: 64, messages, betas: ["e2e-beta-2026-01-01"] },
      { headers: mockHeaders({ tag }) },
    );
    const r = recorded(tag);
    expect(r.path.split("?")[0]).toBe("/anthropic/v1/messages");
    expect(r.headers["x-api-key"]).toBe(gw.masterKey);
    expect(r.headers.authorization).toBeUndefined();
    expect(JSON.stringify(r)).not.toContain(k.key);

    // This SDK sends its key as a Bearer token; older clients use x-api-key (below).
    expect(`${sent?.get("authorization")} ${sent?.get("x-api-key")}`).toContain(k.key);
    const version = sent?.get("anthropic-version");
    const beta = sent?.get("anthropic-beta");
    expect(version).toBeTruthy();
    expect(beta).toContain("e2e-beta-2026-01-01");
    expect(r.headers["anthropic-version"]).toBe(version as string);
    expect(r.headers["anthropic-beta"]).toBe(beta as string);
  });

  for (const how of ["x-api-key", "bearer"] as const) {
    test(`a key sent as ${how} is replaced by the operator's; version and beta pass through`, async () => {
      const k = await gw.createKey({ name: `an-${how}`, limit: 1000 });
      const tag = newTag();
      const res = await gw.fetch("/v1/messages", {
        method: "POST",
        headers: {
          ...(how === "bearer" ? { authorization: `Bearer ${k.key}` } : { "x-api-key": k.key }),
          "content-type": "application/json",
          "anthropic-version": "2023-06-01",
          "anthropic-beta": "one-2025-01-01,two-2025-02-02",
          ...mockHeaders({ tag }),
        },
        body: JSON.stringify({ model: "glm-4.7", max_tokens: 10, messages }),
      });
      expect(res.status).toBe(200);
      const r = recorded(tag);
      expect(r.path).toBe("/anthropic/v1/messages");
      expect(r.headers["x-api-key"]).toBe(gw.masterKey);
      expect(r.headers.authorization).toBeUndefined();
      expect(r.headers["anthropic-version"]).toBe("2023-06-01");
      expect(r.headers["anthropic-beta"]).toBe("one-2025-01-01,two-2025-02-02");
      expect(JSON.stringify(r)).not.toContain(k.key);
      await gw.statsWhen(k.key, { tokens: CHARGE, requests: 1 }, 1000);
    });
  }

  test("a key created with --model has that model forced; otherwise the request's is kept", async () => {
    const forced = await gw.createKey({ name: "an-forced", limit: 1000, model: "glm-forced-2" });
    const free = await gw.createKey({ name: "an-free", limit: 1000 });
    const tag1 = newTag();
    const m1 = await gw
      .anthropic(forced.key)
      .messages.create(
        { model: "claude-e2e-model", max_tokens: 64, messages },
        { headers: mockHeaders({ tag: tag1 }) },
      );
    expect(m1.model).toBe("glm-forced-2");
    expect((recorded(tag1).body as { model?: string }).model).toBe("glm-forced-2");

    const tag2 = newTag();
    const stream = gw
      .anthropic(forced.key)
      .messages.stream(
        { model: "claude-e2e-model", max_tokens: 64, messages },
        { headers: mockHeaders({ tag: tag2 }) },
      );
    expect((await stream.finalMessage()).model).toBe("glm-forced-2");
    expect((recorded(tag2).body as { model?: string }).model).toBe("glm-forced-2");

    const tag3 = newTag();
    const m3 = await gw
      .anthropic(free.key)
      .messages.create(
        { model: "claude-e2e-model", max_tokens: 64, messages },
        { headers: mockHeaders({ tag: tag3 }) },
      );
    expect(m3.model).toBe("claude-e2e-model");
    expect((recorded(tag3).body as { model?: string }).model).toBe("claude-e2e-model");

    // Neither the key nor the request names one: DEFAULT_MODEL.
    const tag4 = newTag();
    const res = await gw.fetch("/v1/messages", {
      method: "POST",
      headers: {
        "x-api-key": free.key,
        "content-type": "application/json",
        ...mockHeaders({ tag: tag4 }),
      },
      body: JSON.stringify({ max_tokens: 10, messages }),
    });
    expect(res.status).toBe(200);
    expect((recorded(tag4).body as { model?: string }).model).toBe("glm-anthropic-default");
  });
});

describe("logs", () => {
  test("over this whole file, no client key and never the master key appear in the logs", () => {
    expect(gw.secrets.length).toBeGreaterThan(5);
    const all = gw.stdout + gw.stderr;
    expect(all).toContain("/v1/messages");
    expect(all).not.toContain(gw.masterKey);
    for (const secret of gw.secrets) expect(all).not.toContain(secret);
  });
});

test("the secret sweep: every gateway's log is non-empty and holds no master, admin or client key", () => {
  expectNoSecretsInLogs();
});
