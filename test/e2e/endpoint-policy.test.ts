/**
 * What a key holder can reach through the gateway, and what the upstream sees
 * of them: only the endpoints the gateway meters, matched exactly; only the
 * allowlisted headers; and back only headers that are not the upstream
 * account's own. The mock upstream records every request it received, which
 * is the ground truth for "never reaches the upstream".
 */
import {
  afterAll,
  beforeAll,
  beforeEach,
  describe,
  expect,
  setDefaultTimeout,
  test,
} from "bun:test";
import Anthropic from "@anthropic-ai/sdk";
import OpenAI from "openai";
import {
  E2E_TIMEOUT_MS,
  expectNoSecretsInLogs,
  type GatewayProcess,
  HOOK_TIMEOUT_MS,
  startGateway,
} from "../harness/gateway.ts";
import { type MockUpstream, startMockUpstream } from "../harness/mock-upstream.ts";
import { thrown } from "../harness/thrown.ts";

setDefaultTimeout(E2E_TIMEOUT_MS);

const chat = { model: "glm-4.7", messages: [{ role: "user" as const, content: "hello" }] };

let mock: MockUpstream;
let gw: GatewayProcess;
let key: string;

beforeAll(async () => {
  mock = await startMockUpstream();
  gw = await startGateway({
    mock,
    env: { EXTRA_PATHS: "/v1/moderations", ALLOWED_ANTHROPIC_BETAS: "prompt-caching-2024-07-31" },
  });
  key = (await gw.createKey({ name: "policy", limit: 1_000_000 })).key;
}, HOOK_TIMEOUT_MS);

afterAll(async () => {
  await gw?.close();
  await mock?.stop();
}, HOOK_TIMEOUT_MS);

beforeEach(() => mock.reset());

const auth = () => ({ authorization: `Bearer ${key}`, "content-type": "application/json" });

async function post(path: string, body: unknown, headers: Record<string, string> = {}) {
  const res = await gw.fetch(path, {
    method: "POST",
    headers: { ...auth(), ...headers },
    body: JSON.stringify(body),
  });
  return { status: res.status, headers: res.headers, body: (await res.json()) as any };
}

describe("endpoint policy", () => {
  test("account-wide objects are 404 in the route's dialect and never reach the upstream", async () => {
    for (const [method, path] of [
      ["GET", "/v1/files"],
      ["POST", "/v1/files"],
      ["GET", "/v1/batches"],
      ["POST", "/v1/batches"],
      ["GET", "/v1/fine_tuning/jobs"],
      ["GET", "/v1/assistants"],
      ["POST", "/v1/threads"],
      ["GET", "/v1/vector_stores"],
      ["POST", "/v1/uploads"],
      ["GET", "/v1/responses/resp_123"],
      ["DELETE", "/v1/responses/resp_123"],
      ["GET", "/v1/messages/batches"],
    ] as const) {
      const res = await gw.fetch(path, { method, headers: auth() });
      expect(res.status, `${method} ${path}`).toBe(404);
      const body = (await res.json()) as any;
      expect(body.error.message).toContain(path);
      if (path.startsWith("/v1/messages")) expect(body.type).toBe("error");
    }
    expect(mock.requests).toHaveLength(0);
  });

  test("encoded slashes, ';' parameters and other second spellings are refused before the upstream", async () => {
    for (const path of [
      "/v1/chat%2Fcompletions",
      "/v1/chat%2fcompletions",
      "/v1/chat/completions/..;/x",
      "/v1/chat/completions;x=1",
      "/v1/chat%5Ccompletions",
      "/v1/chat/%252e%252e/completions",
      "/v1/messages%2F..%2Fbatches",
    ]) {
      const res = await gw.fetch(path, { method: "POST", headers: auth(), body: "{}" });
      expect([400, 404], path).toContain(res.status);
      const body = (await res.json()) as any;
      expect(body.error.message, path).toBeString();
    }
    expect(mock.requests).toHaveLength(0);
  });

  test("background responses are refused with a 400 saying why", async () => {
    const r = await post("/v1/responses", { model: "glm-4.7", input: "hi", background: true });
    expect(r.status).toBe(400);
    expect(r.body.error.message).toContain("background");
    expect(mock.requests).toHaveLength(0);
  });

  test("the metered endpoints still work, and an operator-added path is forwarded", async () => {
    expect((await post("/v1/chat/completions", chat)).status).toBe(200);
    await post("/v1/moderations", { input: "x" });
    const models = await gw.fetch("/v1/models", { headers: auth() });
    expect(models.status).toBe(200);
    expect(mock.requests.map((r) => r.path)).toEqual([
      "/v4/chat/completions",
      "/v4/moderations",
      "/v4/models",
    ]);
  });

  test("the official SDKs raise NotFoundError and BadRequestError for the new refusals", async () => {
    const oa = gw.openai(key, { maxRetries: 0 });
    expect(await thrown(() => oa.files.list())).toBeInstanceOf(OpenAI.NotFoundError);
    expect(await thrown(() => oa.batches.list())).toBeInstanceOf(OpenAI.NotFoundError);
    expect(
      await thrown(() => oa.responses.create({ model: "glm-4.7", input: "hi", background: true })),
    ).toBeInstanceOf(OpenAI.BadRequestError);
    const an = gw.anthropic(key, { maxRetries: 0 });
    expect(await thrown(() => an.messages.batches.list())).toBeInstanceOf(Anthropic.NotFoundError);
    expect(mock.requests).toHaveLength(0);
  });
});

describe("header policy", () => {
  test("identity, billing and forwarding headers never reach the upstream", async () => {
    const r = await post("/v1/chat/completions", chat, {
      "openai-organization": "org-victim",
      "openai-project": "proj-victim",
      "api-key": "someone-elses",
      "x-forwarded-for": "1.2.3.4",
      forwarded: "for=1.2.3.4",
      "x-real-ip": "1.2.3.4",
      cookie: "session=x",
      "x-custom-steer": "1",
      "openai-beta": "assistants=v2",
      "idempotency-key": "idem-1",
      "x-stainless-retry-count": "0",
    });
    expect(r.status).toBe(200);
    expect(mock.requests.map((q) => q.path)).toEqual(["/v4/chat/completions"]);
    const seen = mock.requests[0]?.headers ?? {};
    for (const name of [
      "openai-organization",
      "openai-project",
      "api-key",
      "x-forwarded-for",
      "forwarded",
      "x-real-ip",
      "cookie",
      "x-custom-steer",
    ])
      expect(seen[name], name).toBeUndefined();
    expect(seen.authorization).toBe(`Bearer ${gw.masterKey}`);
    expect(seen["openai-beta"]).toBe("assistants=v2");
    expect(seen["idempotency-key"]).toBe("idem-1");
    expect(seen["x-stainless-retry-count"]).toBe("0");
  });

  test("anthropic-beta values outside the operator's list are dropped", async () => {
    const r = await post(
      "/v1/messages",
      { ...chat, max_tokens: 16 },
      {
        "anthropic-version": "2023-06-01",
        "anthropic-beta": "prompt-caching-2024-07-31, files-api-2025-04-14",
      },
    );
    expect(r.status).toBe(200);
    expect(mock.requests[0]?.headers["anthropic-beta"]).toBe("prompt-caching-2024-07-31");
  });

  test("the upstream's account-wide rate limits and cookies do not come back; the key's quota does", async () => {
    const res = await gw.fetch("/v1/chat/completions", {
      method: "POST",
      headers: { ...auth(), "x-mock-account-headers": "1" },
      body: JSON.stringify(chat),
    });
    expect(res.status).toBe(200);
    expect(res.headers.get("set-cookie")).toBeNull();
    expect(res.headers.get("x-ratelimit-remaining-requests")).toBeNull();
    expect(res.headers.get("x-ratelimit-limit-requests")).toBeNull();
    expect(res.headers.get("anthropic-ratelimit-requests-remaining")).toBeNull();
    expect(res.headers.get("retry-after")).toBeNull();
    expect(res.headers.get("openai-organization")).toBeNull();
    expect(res.headers.get("x-ratelimit-remaining-tokens")).toBeString();
    await res.text();
  });
});

describe("unknown keys", () => {
  test("a flood of made-up keys from one address is cut off; known keys from it keep working", async () => {
    const fresh = (await gw.createKey({ name: "new-here", limit: 1_000_000 })).key;
    const statuses: number[] = [];
    for (let i = 0; i < 40; i++) {
      const res = await gw.fetch("/v1/models", {
        headers: { authorization: `Bearer pk_madeUp${i.toString().padStart(40, "x")}` },
      });
      statuses.push(res.status);
      await res.text();
    }
    expect(statuses.slice(0, 20).every((s) => s === 401)).toBe(true);
    expect(statuses.filter((s) => s === 429).length).toBeGreaterThan(10);
    // The key in use here is served at once, and the failures are counted.
    const known = await post("/v1/chat/completions", chat);
    expect(known.status).toBe(200);
    const oa = gw.openai(key, { maxRetries: 0 });
    expect((await oa.models.list()).data.length).toBeGreaterThan(0);
    // A real key this instance has not seen yet gets through within a retry.
    const an = gw.anthropic(fresh, { maxRetries: 2 });
    const msg = await an.messages.create({ ...chat, max_tokens: 16 });
    expect(msg.type).toBe("message");
    const scrape = await (await gw.fetch("/metrics")).text();
    expect(scrape).toMatch(/tollgate_key_auth_failures_total\{reason="unknown"\} [1-9]/);
    expect(scrape).toMatch(/tollgate_key_auth_failures_total\{reason="refused"\} [1-9]/);
    // The SDKs see their rate-limit class for the cut-off.
    const flooded = gw.openai("pk_madeUpOnceMore0000000000000000000000000000", { maxRetries: 0 });
    expect(await thrown(() => flooded.models.list())).toBeInstanceOf(OpenAI.RateLimitError);
  });
});

test("the secret sweep: every gateway's log is non-empty and holds no master, admin or client key", () => {
  expectNoSecretsInLogs();
});
