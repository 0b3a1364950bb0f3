/**
 * A client's mistake never gets a 500: absurd bodies, odd headers and odd
 * paths get the right 4xx, in the route's dialect, and change nothing.
 */
import { afterAll, beforeAll, expect, setDefaultTimeout, test } from "bun:test";
import {
  E2E_TIMEOUT_MS,
  type GatewayProcess,
  HOOK_TIMEOUT_MS,
  startGateway,
} from "../harness/gateway.ts";
import { type MockUpstream, startMockUpstream } from "../harness/mock-upstream.ts";

// Explicit, for two busy cores: the runner's 5 s default measures the machine.
setDefaultTimeout(E2E_TIMEOUT_MS);

const ADMIN_KEY = "admin-mistakes-0123456789abcdef";
let mock: MockUpstream;
let gw: GatewayProcess;
let key: string;

beforeAll(async () => {
  mock = await startMockUpstream();
  gw = await startGateway({ mock, env: { ADMIN_API_KEY: ADMIN_KEY } });
  key = (await gw.createKey({ name: "mistakes", limit: "1M" })).key;
}, HOOK_TIMEOUT_MS);

afterAll(async () => {
  await gw?.close();
  await mock?.stop();
}, HOOK_TIMEOUT_MS);

const deep = (n: number) =>
  `{"model":"glm-4.7","messages":[],"x":${"[".repeat(n)}${"]".repeat(n)}}`;

test("a JSON body nested 100,000 levels deep gets 400 in each dialect; nothing goes upstream", async () => {
  const before = mock.requestCount;
  for (const [path, dialect] of [
    ["/v1/chat/completions", "openai"],
    ["/v1/messages", "anthropic"],
  ] as const) {
    const res = await gw.fetch(path, {
      method: "POST",
      headers: { authorization: `Bearer ${key}`, "content-type": "application/json" },
      body: deep(100_000),
    });
    expect(res.status).toBe(400);
    const body = (await res.json()) as { type?: string; error: { type: string } };
    expect(body.error.type).toBe("invalid_request_error");
    if (dialect === "anthropic") expect(body.type).toBe("error");
  }
  expect(mock.requestCount).toBe(before);
  expect((await gw.stats(key)).total_requests).toBe(0);
});

test("the admin API answers a deeply nested or malformed body with 400, never 500", async () => {
  for (const body of [deep(100_000), "{", "null", "[]", '"x"']) {
    const res = await gw.fetch("/admin/keys", {
      method: "POST",
      headers: { authorization: `Bearer ${ADMIN_KEY}`, "content-type": "application/json" },
      body,
    });
    expect(res.status, body.slice(0, 20)).toBe(400);
  }
});

test("odd headers and paths get a 4xx, never 500", async () => {
  const statuses: Record<string, number> = {};
  const tries: Array<[string, string, RequestInit]> = [
    ["percent path", "/v1/%E0%A4%A", { method: "POST" }],
    ["encoded slash", "/v1/chat%2Fcompletions", { method: "POST" }],
    ["admin encoded", "/admin/keys/%ZZ", { headers: { authorization: `Bearer ${ADMIN_KEY}` } }],
    ["stats junk bearer", "/stats", { headers: { authorization: "Bearer \u00ff\u00fe" } }],
    [
      "proxy content-length junk",
      "/v1/chat/completions",
      {
        method: "POST",
        headers: {
          authorization: `Bearer ${key}`,
          "content-type": "application/json; charset=latin1",
        },
        body: "\u00ff",
      },
    ],
    [
      "usage bad range",
      "/stats/usage?from=yesterday&step=7x",
      {
        headers: { authorization: `Bearer ${key}` },
      },
    ],
  ];
  for (const [name, path, init] of tries) {
    const res = await gw.fetch(path, init);
    statuses[name] = res.status;
  }
  for (const [name, status] of Object.entries(statuses)) {
    expect(status >= 400 && status < 500, `${name}: ${status}`).toBe(true);
  }
});
