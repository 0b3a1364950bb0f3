/**
 * The OpenAI-compatible side, driven by the official `openai` SDK against the
 * real gateway process: answers, streaming, charging, what reaches the upstream.
 */
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import type OpenAI from "openai";
import {
  E2E_TIMEOUT_MS,
  expectNoSecretsInLogs,
  type GatewayProcess,
  HOOK_TIMEOUT_MS,
  mockHeaders,
  newTag,
  type Stats,
  startGateway,
  waitFor,
} from "../harness/gateway.ts";
import {
  type MockUpstream,
  type RecordedRequest,
  startMockUpstream,
} from "../harness/mock-upstream.ts";

setDefaultTimeout(E2E_TIMEOUT_MS);

const DEFAULT_MODEL = "glm-e2e-default";
const messages: OpenAI.Chat.ChatCompletionMessageParam[] = [{ role: "user", content: "hello" }];

let mock: MockUpstream;
let gw: GatewayProcess;

beforeAll(async () => {
  mock = await startMockUpstream();
  gw = await startGateway({ mock, env: { DEFAULT_MODEL } });
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

/** The mock answers tok0 … tok(n-1). */
function expectedText(n: number): string {
  let s = "";
  for (let i = 0; i < n; i++) s += `tok${i} `;
  return s;
}

function expectWindow(s: Stats, limit: number, used: number): void {
  expect(s.token_limit_per_5h).toBe(limit);
  expect(s.current_usage.tokens_used_in_current_window).toBe(used);
  expect(s.current_usage.remaining_tokens).toBe(Math.max(0, limit - used));
}

describe("chat completions, not streamed", () => {
  test("the answer arrives with the upstream's usage, and /stats shows the charge within 1 s", async () => {
    const k = await gw.createKey({ name: "oa-plain", limit: 1000 });
    const client = gw.openai(k.key);
    const { data, response } = await client.chat.completions
      .create(
        { model: "glm-4.6", messages },
        { headers: mockHeaders({ promptTokens: 20, completionTokens: 7 }) },
      )
      .withResponse();
    expect(data.choices[0]?.message.content).toBe(expectedText(7));
    expect(data.usage?.total_tokens).toBe(27);
    expect(data.model).toBe("glm-4.6");

    // Quota headers, in OpenAI's names, after this response's own charge.
    expect(response.headers.get("x-ratelimit-limit-tokens")).toBe("1000");
    expect(response.headers.get("x-ratelimit-remaining-tokens")).toBe("973");
    expect(response.headers.get("x-ratelimit-reset-tokens")).toMatch(
      /^(\d+h)?(\d+m)?\d+(\.\d+)?s$/,
    );

    const s = await gw.statsWhen(k.key, { tokens: 27, requests: 1 }, 1000);
    expectWindow(s, 1000, 27);

    // A second call adds up exactly.
    const again = await client.chat.completions.create({ model: "glm-4.6", messages });
    expect(again.usage?.total_tokens).toBe(16);
    const s2 = await gw.statsWhen(k.key, { tokens: 43, requests: 2 }, 1000);
    expectWindow(s2, 1000, 43);
  });
});

describe("chat completions, streamed", () => {
  test("a client that did not ask for usage never sees a usage chunk, and is charged exactly", async () => {
    const k = await gw.createKey({ name: "oa-stream-hidden", limit: 1000 });
    const client = gw.openai(k.key);
    const { data: stream, response } = await client.chat.completions
      .create(
        { model: "glm-4.7", messages, stream: true },
        { headers: mockHeaders({ promptTokens: 9, completionTokens: 6 }) },
      )
      .withResponse();
    expect(response.headers.get("content-type")).toContain("text/event-stream");
    expect(response.headers.get("x-ratelimit-limit-tokens")).toBe("1000");
    expect(Number(response.headers.get("x-ratelimit-remaining-tokens"))).toBeGreaterThan(0);

    const chunks: OpenAI.Chat.ChatCompletionChunk[] = [];
    for await (const chunk of stream) chunks.push(chunk);
    const text = chunks.map((c) => c.choices[0]?.delta.content ?? "").join("");
    expect(text).toBe(expectedText(6));
    expect(chunks.at(-1)?.choices[0]?.finish_reason).toBe("stop");
    for (const c of chunks) {
      expect(c.choices.length).toBeGreaterThan(0);
      expect(c.usage ?? null).toBeNull();
    }
    const s = await gw.statsWhen(k.key, { tokens: 15, requests: 1 }, 1000);
    expectWindow(s, 1000, 15);

    // On the wire too: no usage numbers anywhere, and the stream still ends properly.
    const res = await gw.fetch("/v1/chat/completions", {
      method: "POST",
      headers: {
        authorization: `Bearer ${k.key}`,
        "content-type": "application/json",
        ...mockHeaders({ promptTokens: 9, completionTokens: 6 }),
      },
      body: JSON.stringify({ model: "glm-4.7", messages, stream: true }),
    });
    const wire = await res.text();
    expect(wire).toContain("tok5");
    expect(wire).not.toContain("prompt_tokens");
    expect(wire).not.toContain("total_tokens");
    expect(wire.endsWith("data: [DONE]\n\n")).toBe(true);
    await gw.statsWhen(k.key, { tokens: 30, requests: 2 }, 1000);
  });

  test("a client that asked for usage (include_usage) gets the usage chunk, and is charged exactly", async () => {
    const k = await gw.createKey({ name: "oa-stream-usage", limit: 1000 });
    const client = gw.openai(k.key);
    const stream = await client.chat.completions.create(
      { model: "glm-4.7", messages, stream: true, stream_options: { include_usage: true } },
      { headers: mockHeaders({ promptTokens: 12, completionTokens: 4 }) },
    );
    const chunks: OpenAI.Chat.ChatCompletionChunk[] = [];
    for await (const chunk of stream) chunks.push(chunk);
    const last = chunks.at(-1);
    expect(last?.choices).toEqual([]);
    expect(last?.usage).toEqual({ prompt_tokens: 12, completion_tokens: 4, total_tokens: 16 });
    expect(chunks.filter((c) => c.usage)).toHaveLength(1);
    expect(chunks.map((c) => c.choices[0]?.delta.content ?? "").join("")).toBe(expectedText(4));
    const s = await gw.statsWhen(k.key, { tokens: 16, requests: 1 }, 1000);
    expectWindow(s, 1000, 16);
  });

  test("the first chunk arrives at the upstream's pace, long before the stream ends", async () => {
    const k = await gw.createKey({ name: "oa-first-byte", limit: 1000 });
    const client = gw.openai(k.key);
    const started = performance.now();
    const stream = await client.chat.completions.create(
      { model: "glm-4.7", messages, stream: true },
      { headers: mockHeaders({ completionTokens: 6, chunkDelayMs: 300 }) },
    );
    const arrivals: number[] = [];
    for await (const chunk of stream) {
      if (chunk.choices[0]?.delta.content) arrivals.push(performance.now() - started);
    }
    const ended = performance.now() - started;
    expect(arrivals).toHaveLength(6);
    // The mock waits 300 ms between chunks: the stream lasts over 2 s, the
    // first token must not wait for the rest. Measured against the stream's
    // own end, not against a wall-clock figure a busy machine could miss.
    expect(ended).toBeGreaterThan(1800);
    expect(ended - (arrivals[0] ?? 0)).toBeGreaterThan(1500);
    // Tokens keep trickling in, rather than bunching up at the end.
    expect((arrivals[3] ?? 0) - (arrivals[0] ?? 0)).toBeGreaterThan(600);
    await gw.statsWhen(k.key, { tokens: 17, requests: 1 }, 1000);
  });
});

describe("what the upstream sees", () => {
  test("the operator's key replaces the client's, the path loses /v1, the model is kept", async () => {
    const k = await gw.createKey({ name: "oa-headers", limit: 1000 });
    const tag = newTag();
    await gw
      .openai(k.key)
      .chat.completions.create(
        { model: "glm-4.5-air", messages },
        { headers: mockHeaders({ tag }) },
      );
    const r = recorded(tag);
    expect(r.method).toBe("POST");
    expect(r.path).toBe("/v4/chat/completions");
    expect(r.headers.authorization).toBe(`Bearer ${gw.masterKey}`);
    expect(r.headers["x-api-key"]).toBeUndefined();
    expect(JSON.stringify(r)).not.toContain(k.key);
    expect((r.body as { model?: string }).model).toBe("glm-4.5-air");
  });

  test("a key given as ?api_key= or x-api-key never reaches the upstream either (nor do unknown query parameters)", async () => {
    const k = await gw.createKey({ name: "oa-query-key", limit: 1000 });
    const ways: Array<[string, Record<string, string>, string]> = [
      [`/v1/chat/completions?api_key=${k.key}&keep=1`, {}, "/v4/chat/completions"],
      ["/v1/chat/completions?keep=2", { "x-api-key": k.key }, "/v4/chat/completions"],
    ];
    for (const [path, auth, upstreamPath] of ways) {
      const tag = newTag();
      const res = await gw.fetch(path, {
        method: "POST",
        headers: { "content-type": "application/json", ...auth, ...mockHeaders({ tag }) },
        body: JSON.stringify({ model: "glm-4.7", messages }),
      });
      expect(res.status).toBe(200);
      const r = recorded(tag);
      expect(r.path).toBe(upstreamPath);
      expect(r.headers.authorization).toBe(`Bearer ${gw.masterKey}`);
      expect(r.headers["x-api-key"]).toBeUndefined();
      expect(JSON.stringify(r)).not.toContain(k.key);
    }
    await gw.statsWhen(k.key, { tokens: 32, requests: 2 }, 1000);
  });

  test("a key created with --model has that model forced, streamed or not", async () => {
    const k = await gw.createKey({ name: "oa-forced", limit: 1000, model: "glm-forced-1" });
    const client = gw.openai(k.key);
    const tag = newTag();
    const res = await client.chat.completions.create(
      { model: "gpt-4o", messages },
      { headers: mockHeaders({ tag }) },
    );
    expect((recorded(tag).body as { model?: string }).model).toBe("glm-forced-1");
    expect(res.model).toBe("glm-forced-1");

    const tag2 = newTag();
    const stream = await client.chat.completions.create(
      { model: "gpt-4o", messages, stream: true },
      { headers: mockHeaders({ tag: tag2 }) },
    );
    for await (const chunk of stream) expect(chunk.model).toBe("glm-forced-1");
    expect((recorded(tag2).body as { model?: string }).model).toBe("glm-forced-1");

    const s = await gw.statsWhen(k.key, { tokens: 32, requests: 2 }, 1000);
    expect(s.model).toBe("glm-forced-1");
  });

  test("DEFAULT_MODEL is used when neither the key nor the request names one", async () => {
    const k = await gw.createKey({ name: "oa-default-model", limit: 1000 });
    const tag = newTag();
    const res = await gw.fetch("/v1/chat/completions", {
      method: "POST",
      headers: {
        authorization: `Bearer ${k.key}`,
        "content-type": "application/json",
        ...mockHeaders({ tag }),
      },
      body: JSON.stringify({ messages }),
    });
    expect(res.status).toBe(200);
    expect(((await res.json()) as { model: string }).model).toBe(DEFAULT_MODEL);
    expect((recorded(tag).body as { model?: string }).model).toBe(DEFAULT_MODEL);
  });

  test("GET /v1/models is forwarded to the upstream's /models", async () => {
    const k = await gw.createKey({ name: "oa-models", limit: 1000 });
    const before = mock.requests.length;
    const models = [];
    for await (const m of gw.openai(k.key).models.list()) models.push(m.id);
    expect(models).toEqual(["glm-4.7", "glm-4.6", "glm-4.5-air"]);
    const r = mock.requests.slice(before).find((x) => x.path.startsWith("/v4/models"));
    expect(r?.method).toBe("GET");
    expect(r?.path).toBe("/v4/models");
    expect(r?.headers.authorization).toBe(`Bearer ${gw.masterKey}`);
    expect(JSON.stringify(r)).not.toContain(k.key);
    // Proxied, so it carries the quota headers too.
    const raw = await gw.openai(k.key).models.list().asResponse();
    expect(raw.headers.get("x-ratelimit-limit-tokens")).toBe("1000");
    expect(raw.headers.get("x-ratelimit-remaining-tokens")).toBe("1000");
  });

  test("embeddings are forwarded and charged what the upstream reports", async () => {
    const k = await gw.createKey({ name: "oa-embeddings", limit: 1000 });
    const tag = newTag();
    const res = await gw
      .openai(k.key)
      .embeddings.create(
        { model: "embedding-3", input: ["one", "two"] },
        { headers: mockHeaders({ promptTokens: 9, tag }) },
      );
    expect(res.data).toHaveLength(2);
    expect(res.usage.total_tokens).toBe(9);
    expect(recorded(tag).path).toBe("/v4/embeddings");
    await gw.statsWhen(k.key, { tokens: 9, requests: 1 }, 1000);
  });
});

describe("logs", () => {
  test("one JSON line per request, carrying the id sent back as x-request-id", async () => {
    const k = await gw.createKey({ name: "oa-logs", limit: 1000 });
    const client = gw.openai(k.key);
    const ids: Array<{ id: string; status: number }> = [];
    const plain = await client.chat.completions
      .create({ model: "glm-4.7", messages })
      .withResponse();
    ids.push({ id: plain.response.headers.get("x-request-id") ?? "", status: 200 });
    const streamed = await client.chat.completions
      .create({ model: "glm-4.7", messages, stream: true })
      .withResponse();
    for await (const _ of streamed.data) {
      // read to the end
    }
    ids.push({ id: streamed.response.headers.get("x-request-id") ?? "", status: 200 });
    const stats = await gw.fetch("/stats", { headers: { authorization: `Bearer ${k.key}` } });
    ids.push({ id: stats.headers.get("x-request-id") ?? "", status: 200 });
    const denied = await gw.fetch("/v1/chat/completions", { method: "POST", body: "{}" });
    ids.push({ id: denied.headers.get("x-request-id") ?? "", status: 401 });

    for (const { id } of ids) expect(id).toMatch(/^[\w.:-]{8,}$/);
    expect(new Set(ids.map((x) => x.id)).size).toBe(ids.length);

    // A stream's line may be written a moment after its end.
    await waitFor("every request's log line", () =>
      ids.every(({ id }) => gw.stdout.includes(id)) ? true : undefined,
    );
    const lines = gw.stdout.split("\n").filter((l) => l.trim() !== "");
    for (const line of lines) expect(() => JSON.parse(line)).not.toThrow();
    for (const { id, status } of ids) {
      const mine = lines.filter((l) => l.includes(id));
      expect(mine).toHaveLength(1);
      expect(JSON.parse(mine[0] as string)).toMatchObject({ status });
    }
  });

  test("over this whole file, no client key and never the master key appear in the logs", () => {
    expect(gw.secrets.length).toBeGreaterThan(5);
    const all = gw.stdout + gw.stderr;
    expect(all.length).toBeGreaterThan(0);
    expect(all).not.toContain(gw.masterKey);
    for (const secret of gw.secrets) expect(all).not.toContain(secret);
  });
});

test("the secret sweep: every gateway's log is non-empty and holds no master, admin or client key", () => {
  expectNoSecretsInLogs();
});
