import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { createHash } from "node:crypto";
import OpenAI from "openai";
import {
  E2E_TIMEOUT_MS,
  expectNoSecretsInLogs,
  type GatewayProcess,
  HOOK_TIMEOUT_MS,
  startGateway,
  waitFor,
} from "../harness/gateway.ts";
import { type MockUpstream, startMockUpstream } from "../harness/mock-upstream.ts";

setDefaultTimeout(E2E_TIMEOUT_MS);

// The admin API over real HTTP against the real server process.

const ADMIN_KEY = "admin-e2e-0123456789abcdef0123";
const chat = { model: "glm-4.7", messages: [{ role: "user" as const, content: "hello" }] };
type Json = Record<string, unknown>;
type KeyObj = Json & { id: string; key?: string; usage: Json };

let mock: MockUpstream;
let gw: GatewayProcess;

beforeAll(async () => {
  mock = await startMockUpstream();
  gw = await startGateway({ mock, env: { ADMIN_API_KEY: ADMIN_KEY } });
}, HOOK_TIMEOUT_MS);
afterAll(async () => {
  await gw?.close();
  await mock?.stop();
}, HOOK_TIMEOUT_MS);

async function proxyStatus(key: string): Promise<number> {
  try {
    await gw.openai(key, { maxRetries: 0 }).chat.completions.create(chat);
    return 200;
  } catch (err) {
    if (err instanceof OpenAI.APIError && err.status !== undefined) return err.status;
    throw err;
  }
}

async function create(body: Json = {}): Promise<KeyObj> {
  const r = await gw.admin<KeyObj>("POST", "/admin/keys", {
    name: "e2e",
    token_limit_per_5h: 1000,
    ...body,
  });
  expect(r.status).toBe(201);
  if (r.body.key) gw.secrets.push(r.body.key);
  return r.body;
}

const KEY_FIELDS = [
  "id",
  "name",
  "prefix",
  "token_limit_per_5h",
  "model",
  "expires_at",
  "max_concurrent",
  "token_limit_per_week",
  "allowed_models",
  "disabled",
  "created_at",
  "last_used",
  "total_lifetime_tokens",
  "total_requests",
  "status",
  "revoked_at",
  "usage",
  "weekly_usage",
].sort();

describe("keys through the admin API", () => {
  test("create answers the documented key object plus the secret, once", async () => {
    const k = await create({ name: "alice", model: "glm-4.6", expires_at: "2099-01-31" });
    expect(Object.keys(k).sort()).toEqual([...KEY_FIELDS, "key"].sort());
    expect(k).toMatchObject({
      name: "alice",
      token_limit_per_5h: 1000,
      model: "glm-4.6",
      expires_at: "2099-01-31T00:00:00.000Z",
      max_concurrent: null,
      token_limit_per_week: null,
      weekly_usage: null,
      allowed_models: null,
      disabled: false,
      last_used: null,
      total_lifetime_tokens: 0,
      total_requests: 0,
      status: "active",
      usage: { tokens_used_in_current_window: 0, remaining_tokens: 1000, window_resets_at: null },
    });
    expect(String(k.key)).toStartWith(String(k.prefix));
    const shown = await gw.admin("GET", `/admin/keys/${k.id}`);
    expect(shown.status).toBe(200);
    expect(shown.body).toEqual(Object.fromEntries(Object.entries(k).filter(([f]) => f !== "key")));
  });

  test("a key made by the API works through the proxy at once; its usage shows in the API", async () => {
    const k = await create({ name: "proxy-user" });
    expect(await proxyStatus(String(k.key))).toBe(200);
    expect(await proxyStatus(String(k.key))).toBe(200);
    const shown = await waitFor("the usage to be flushed", async () => {
      const r = await gw.admin<KeyObj>("GET", `/admin/keys/${k.id}`);
      return r.body.total_requests === 2 ? r.body : undefined;
    });
    expect(shown.total_lifetime_tokens).toBe(32);
    expect(shown.usage.tokens_used_in_current_window).toBe(32);
    expect(shown.usage.remaining_tokens).toBe(1000 - 32);
    const resets = Date.parse(String(shown.usage.window_resets_at));
    expect(resets - Date.now()).toBeGreaterThan(4.9 * 3600_000);
    expect(resets - Date.now()).toBeLessThanOrEqual(5 * 3600_000);
    const listed = await gw.admin<{ keys: KeyObj[] }>("GET", "/admin/keys?search=proxy-user");
    expect(listed.body.keys.map((x) => x.usage.tokens_used_in_current_window)).toEqual([32]);
  });

  test("disable, enable, rotate and delete through the API are obeyed at once", async () => {
    const k = await create({ name: "revocable" });
    const secret = String(k.key);
    expect(await proxyStatus(secret)).toBe(200);

    const off = await gw.admin("PATCH", `/admin/keys/${k.id}`, { disabled: true });
    expect(off.body).toMatchObject({ disabled: true, status: "disabled" });
    expect(await proxyStatus(secret)).toBe(403);
    await gw.admin("PATCH", `/admin/keys/${k.id}`, { disabled: false });
    expect(await proxyStatus(secret)).toBe(200);

    const rotated = await gw.admin<KeyObj>("POST", `/admin/keys/${k.id}/rotate`);
    expect(rotated.status).toBe(200);
    const fresh = String(rotated.body.key);
    gw.secrets.push(fresh);
    expect(fresh).not.toBe(secret);
    expect(rotated.body.id).toBe(k.id);
    expect(await proxyStatus(secret)).toBe(401);
    expect(await proxyStatus(fresh)).toBe(200);

    const gone = await gw.admin("DELETE", `/admin/keys/${k.id}`);
    expect(gone).toMatchObject({
      status: 200,
      body: { id: k.id, revoked: true, key: { id: k.id, status: "revoked" } },
    });
    expect(await proxyStatus(fresh)).toBe(401);
    // Revoked: kept, but no longer changed or rotated.
    for (const [method, path] of [
      ["PATCH", `/admin/keys/${k.id}`],
      ["POST", `/admin/keys/${k.id}/rotate`],
    ] as const) {
      const r = await gw.admin(method, path, method === "PATCH" ? { name: "x" } : undefined);
      expect(r.status).toBe(409);
    }
    expect(await proxyStatus(fresh)).toBe(401);
    expect((await gw.admin("POST", `/admin/keys/${k.id}/purge`)).body).toEqual({
      id: k.id,
      purged: true,
    });
    for (const [method, path] of [
      ["GET", `/admin/keys/${k.id}`],
      ["PATCH", `/admin/keys/${k.id}`],
      ["POST", `/admin/keys/${k.id}/rotate`],
      ["DELETE", `/admin/keys/${k.id}`],
      ["POST", `/admin/keys/${k.id}/purge`],
      ["GET", `/admin/keys/${k.id}/usage`],
    ] as const) {
      const r = await gw.admin(method, path, method === "PATCH" ? { name: "x" } : undefined);
      expect(r.status).toBe(404);
      expect(r.body).toEqual({ error: { code: "not_found", message: `no key with id ${k.id}` } });
    }
  });

  test("update changes what it is given and leaves the rest; null removes model and expiry", async () => {
    const k = await create({
      name: "to-update",
      model: "glm-4.6",
      expires_at: "2099-01-01T12:00:00Z",
    });
    const r = await gw.admin("PATCH", `/admin/keys/${k.id}`, {
      name: "updated",
      token_limit_per_5h: 5000,
      model: null,
      expires_at: null,
    });
    expect(r.body).toMatchObject({
      name: "updated",
      token_limit_per_5h: 5000,
      model: null,
      expires_at: null,
      usage: { remaining_tokens: 5000 },
    });
    const r2 = await gw.admin("PATCH", `/admin/keys/${k.id}`, {
      expires_at: "2000-01-01T00:00:00+02:00",
    });
    expect(r2.body).toMatchObject({
      name: "updated",
      expires_at: "1999-12-31T22:00:00.000Z",
      status: "expired",
    });
    expect(await proxyStatus(String(k.key))).toBe(403);
  });

  test("a concurrency limit is set at creation, changed, kept by other changes and removed with null", async () => {
    const k = await create({ name: "busy", max_concurrent: 3 });
    expect(k.max_concurrent).toBe(3);
    expect((await gw.admin("GET", `/admin/keys/${k.id}`)).body.max_concurrent).toBe(3);
    const listed = await gw.admin<{ keys: KeyObj[] }>("GET", "/admin/keys?search=busy");
    expect(listed.body.keys.find((x) => x.id === k.id)?.max_concurrent).toBe(3);

    const raised = await gw.admin("PATCH", `/admin/keys/${k.id}`, { max_concurrent: 10 });
    expect(raised.body).toMatchObject({ max_concurrent: 10, name: "busy" });
    const renamed = await gw.admin("PATCH", `/admin/keys/${k.id}`, { name: "busier" });
    expect(renamed.body).toMatchObject({ max_concurrent: 10, name: "busier" });
    const removed = await gw.admin("PATCH", `/admin/keys/${k.id}`, { max_concurrent: null });
    expect(removed.status).toBe(200);
    expect(removed.body.max_concurrent).toBeNull();
    expect((await gw.admin("GET", `/admin/keys/${k.id}`)).body.max_concurrent).toBeNull();
  });

  test("the OpenAPI document describes max_concurrent on create, update and the key object", async () => {
    const doc = (await (await gw.fetch("/admin/openapi.json")).json()) as {
      components: { schemas: Record<string, { properties: Record<string, Json> }> };
    };
    const { CreateKey, UpdateKey, Key } = doc.components.schemas;
    for (const schema of [CreateKey, UpdateKey]) {
      expect(JSON.stringify(schema?.properties.max_concurrent)).toContain('"minimum":1');
      expect(JSON.stringify(schema?.properties.max_concurrent)).toContain("null");
    }
    expect(Key?.properties.max_concurrent).toBeDefined();
  });

  test("a bad concurrency limit in an update is refused and changes nothing", async () => {
    const k = await create({ name: "steady", max_concurrent: 2 });
    for (const [value, message] of [
      [0, /^max_concurrent: must be at least 1/],
      [-3, /^max_concurrent: must be at least 1/],
      [1.5, /^max_concurrent: must be a whole number of requests$/],
      ["4", /^max_concurrent: must be a whole number of requests, or null$/],
      [2 ** 31, /^max_concurrent: is too large$/],
    ] as const) {
      const r = await gw.admin("PATCH", `/admin/keys/${k.id}`, {
        name: "changed",
        max_concurrent: value,
      });
      expect(r.status).toBe(400);
      expect(r.body.error).toMatchObject({ code: "validation_error" });
      expect(String((r.body.error as Json).message)).toMatch(message);
    }
    const after = await gw.admin("GET", `/admin/keys/${k.id}`);
    expect(after.body).toMatchObject({ name: "steady", max_concurrent: 2 });
  });

  test("a weekly limit is set at creation, shown with its window, changed and removed with null", async () => {
    const k = await create({ name: "weekly-api", token_limit_per_week: 5000 });
    expect(k.token_limit_per_week).toBe(5000);
    expect(k.weekly_usage).toEqual({
      tokens_used_in_current_window: 0,
      remaining_tokens: 5000,
      window_resets_at: null,
    });
    expect(await proxyStatus(String(k.key))).toBe(200);
    const shown = await waitFor("the usage to be flushed", async () => {
      const r = await gw.admin<KeyObj>("GET", `/admin/keys/${k.id}`);
      return r.body.total_requests === 1 ? r.body : undefined;
    });
    const week = shown.weekly_usage as Json;
    expect(week.tokens_used_in_current_window).toBe(16);
    expect(week.remaining_tokens).toBe(5000 - 16);
    const resets = Date.parse(String(week.window_resets_at));
    expect(resets - Date.now()).toBeGreaterThan(6.9 * 24 * 3600_000);
    const listed = await gw.admin<{ keys: KeyObj[] }>("GET", "/admin/keys?search=weekly-api");
    expect(listed.body.keys[0]?.weekly_usage).toMatchObject({ tokens_used_in_current_window: 16 });

    for (const [value, message] of [
      [-1, /^token_limit_per_week: must not be negative/],
      [1.5, /^token_limit_per_week: must be a whole number of tokens$/],
      ["9", /^token_limit_per_week: must be a number of tokens, or null$/],
    ] as const) {
      const r = await gw.admin("PATCH", `/admin/keys/${k.id}`, {
        name: "changed",
        token_limit_per_week: value,
      });
      expect(r.status).toBe(400);
      expect(String((r.body.error as Json).message)).toMatch(message);
    }
    const lowered = await gw.admin("PATCH", `/admin/keys/${k.id}`, { token_limit_per_week: 10 });
    expect(lowered.body).toMatchObject({ token_limit_per_week: 10, name: "weekly-api" });
    // 16 used of a week of 10: refused, though the 5-hour limit has room.
    expect(await proxyStatus(String(k.key))).toBe(429);
    const removed = await gw.admin("PATCH", `/admin/keys/${k.id}`, { token_limit_per_week: null });
    expect(removed.body).toMatchObject({ token_limit_per_week: null, weekly_usage: null });
    expect(await proxyStatus(String(k.key))).toBe(200);

    const doc = (await (await gw.fetch("/admin/openapi.json")).json()) as {
      components: { schemas: Record<string, { properties: Record<string, Json> }> };
    };
    const { CreateKey, UpdateKey, Key } = doc.components.schemas;
    for (const schema of [CreateKey, UpdateKey, Key])
      expect(JSON.stringify(schema?.properties.token_limit_per_week)).toContain("7 days");
    expect(Key?.properties.weekly_usage).toBeDefined();
  });

  test("allowed models are set, changed, cleared with null or [], and bad lists change nothing", async () => {
    const k = await create({ name: "models-api", allowed_models: ["glm-4.6", "glm-4.5*"] });
    expect(k.allowed_models).toEqual(["glm-4.6", "glm-4.5*"]);
    for (const [value, message] of [
      ["glm-4.6", /^allowed_models: must be a list of model names or glob patterns, or null$/],
      [[""], /^allowed_models\.0: must not contain an empty name$/],
      [[7], /^allowed_models\.0: must be model names$/],
    ] as const) {
      const r = await gw.admin("PATCH", `/admin/keys/${k.id}`, { allowed_models: value });
      expect(r.status).toBe(400);
      expect(String((r.body.error as Json).message)).toMatch(message);
    }
    expect((await gw.admin("GET", `/admin/keys/${k.id}`)).body.allowed_models).toEqual([
      "glm-4.6",
      "glm-4.5*",
    ]);
    const changed = await gw.admin("PATCH", `/admin/keys/${k.id}`, { allowed_models: ["glm-5"] });
    expect(changed.body.allowed_models).toEqual(["glm-5"]);
    const emptied = await gw.admin("PATCH", `/admin/keys/${k.id}`, { allowed_models: [] });
    expect(emptied.body.allowed_models).toBeNull();
    await gw.admin("PATCH", `/admin/keys/${k.id}`, { allowed_models: ["glm-5"] });
    const cleared = await gw.admin("PATCH", `/admin/keys/${k.id}`, { allowed_models: null });
    expect(cleared.body.allowed_models).toBeNull();
  });

  test("list filters by status, model and search, pages, and counts the total", async () => {
    const tag = `f${Date.now().toString(36)}`;
    // Newest first: keys made in the same millisecond would tie (then order by
    // their random ids), so each is made a little after the one before.
    await create({ name: `${tag}-a`, model: `${tag}-model` });
    await Bun.sleep(5);
    const b = await create({ name: `${tag}-b` });
    await Bun.sleep(5);
    const c = await create({ name: `${tag}-c`, expires_at: "2001-01-01" });
    await gw.admin("PATCH", `/admin/keys/${b.id}`, { disabled: true });
    const names = async (q: string) => {
      const r = await gw.admin<{ total: number; keys: KeyObj[] }>(
        "GET",
        `/admin/keys?search=${tag}${q}`,
      );
      expect(r.status).toBe(200);
      return r.body.keys.map((k) => k.name);
    };
    expect(await names("")).toEqual([`${tag}-c`, `${tag}-b`, `${tag}-a`]);
    expect(await names("&status=active")).toEqual([`${tag}-a`]);
    expect(await names("&status=disabled")).toEqual([`${tag}-b`]);
    expect(await names("&status=expired")).toEqual([`${tag}-c`]);
    expect(await names(`&model=${tag}-model`)).toEqual([`${tag}-a`]);
    const page = await gw.admin("GET", `/admin/keys?search=${tag}&limit=1&offset=1`);
    expect(page.body).toMatchObject({ total: 3, limit: 1, offset: 1 });
    expect((page.body.keys as KeyObj[]).map((k) => k.id)).toEqual([b.id]);
    expect(c.status).toBe("expired");
  });
});

describe("bad input gets a clear 400 naming the field, and changes nothing", () => {
  const cases: Array<[string, string, unknown, RegExp]> = [
    ["POST", "/admin/keys", "{not json", /not valid JSON/],
    ["POST", "/admin/keys", {}, /^name: is required$/],
    ["POST", "/admin/keys", { name: "x" }, /^token_limit_per_5h: is required$/],
    ["POST", "/admin/keys", { name: " ", token_limit_per_5h: 1 }, /^name: must not be empty$/],
    [
      "POST",
      "/admin/keys",
      { name: "x", token_limit_per_5h: -1 },
      /^token_limit_per_5h: must not be negative$/,
    ],
    [
      "POST",
      "/admin/keys",
      { name: "x", token_limit_per_5h: 1.5 },
      /^token_limit_per_5h: must be a whole number/,
    ],
    ["POST", "/admin/keys", { name: "x", token_limit_per_5h: "100" }, /^token_limit_per_5h: /],
    [
      "POST",
      "/admin/keys",
      { name: "x", token_limit_per_5h: 1, expires_at: "soon" },
      /^expires_at: expected an ISO date/,
    ],
    [
      "POST",
      "/admin/keys",
      { name: "x", token_limit_per_5h: 1, expires_at: "2027-02-30" },
      /^expires_at: /,
    ],
    [
      "POST",
      "/admin/keys",
      { name: "x", token_limit_per_5h: 1, limit: 5 },
      /^limit: unknown field$/,
    ],
    [
      "POST",
      "/admin/keys",
      { name: "x", token_limit_per_5h: 1, max_concurrent: 0 },
      /^max_concurrent: must be at least 1/,
    ],
    [
      "POST",
      "/admin/keys",
      { name: "x", token_limit_per_5h: 1, max_concurrent: "two" },
      /^max_concurrent: must be a whole number of requests, or null$/,
    ],
    ["POST", "/admin/keys", [1, 2], /./],
    ["GET", "/admin/keys?limit=0", undefined, /^limit: must be at least 1$/],
    ["GET", "/admin/keys?limit=501", undefined, /^limit: must be at most 500$/],
    ["GET", "/admin/keys?offset=-1", undefined, /^offset: must be a whole number$/],
    [
      "GET",
      "/admin/keys?status=gone",
      undefined,
      /^status: must be all, active, expired, disabled or revoked$/,
    ],
    ["GET", "/admin/usage?step=2h", undefined, /^step: must be one of 5m, 15m, 1h, 6h, 1d$/],
    ["GET", "/admin/usage?from=yesterday", undefined, /^from: expected an ISO date/],
    ["GET", "/admin/usage?from=2026-01-02&to=2026-01-01", undefined, /^from: must be before to$/],
    ["GET", "/admin/usage?from=2020-01-01&step=5m", undefined, /at most 2000/],
  ];
  for (const [method, path, body, message] of cases) {
    test(`${method} ${path} ${typeof body === "string" ? body : JSON.stringify(body ?? "")}`, async () => {
      const before = (await gw.admin<{ total: number }>("GET", "/admin/keys?limit=1")).body.total;
      const res = await gw.fetch(path, {
        method,
        headers: { authorization: `Bearer ${ADMIN_KEY}`, "content-type": "application/json" },
        body:
          body === undefined ? undefined : typeof body === "string" ? body : JSON.stringify(body),
      });
      const text = await res.text();
      expect(res.status).toBe(400);
      const parsed = JSON.parse(text) as { error: { code: string; message: string } };
      expect(parsed.error.code).toBe("validation_error");
      expect(parsed.error.message).toMatch(message);
      expect(text).not.toMatch(/\.ts:\d+|\n\s+at /);
      expect((await gw.admin<{ total: number }>("GET", "/admin/keys?limit=1")).body.total).toBe(
        before,
      );
    });
  }

  test("PATCH with nothing to change, and a body that is not JSON", async () => {
    const k = await create();
    const empty = await gw.admin("PATCH", `/admin/keys/${k.id}`, {});
    expect(empty.status).toBe(400);
    expect(String((empty.body.error as Json).message)).toContain("give at least one of");
    const form = await gw.fetch(`/admin/keys/${k.id}`, {
      method: "PATCH",
      headers: {
        authorization: `Bearer ${ADMIN_KEY}`,
        "content-type": "application/x-www-form-urlencoded",
      },
      body: "name=x",
    });
    expect(form.status).toBe(400);
    expect(await form.json()).toMatchObject({ error: { code: "validation_error" } });
    expect((await gw.admin("GET", `/admin/keys/${k.id}`)).body.name).toBe("e2e");
  });
});

describe("secrets and hashes never leave except where documented", () => {
  test("the secret is only in the create and rotate answers; no answer holds the hash", async () => {
    const k = await create({ name: "secretive" });
    const secret = String(k.key);
    expect(await proxyStatus(secret)).toBe(200);
    const rotated = await gw.admin<KeyObj>("POST", `/admin/keys/${k.id}/rotate`);
    const fresh = String(rotated.body.key);
    gw.secrets.push(fresh);
    const hashes = [secret, fresh].map((s) => createHash("sha256").update(s).digest("hex"));
    const answers = [
      (await gw.admin("GET", "/admin/keys?limit=500")).text,
      (await gw.admin("GET", `/admin/keys/${k.id}`)).text,
      (await gw.admin("GET", `/admin/keys/${k.id}/usage`)).text,
      (await gw.admin("GET", "/admin/usage")).text,
      (await gw.admin("PATCH", `/admin/keys/${k.id}`, { name: "secretive2" })).text,
      rotated.text,
      JSON.stringify(k),
    ];
    for (const text of answers) {
      for (const h of hashes) expect(text).not.toContain(h);
      expect(text.toLowerCase()).not.toContain("hash");
    }
    for (const text of answers.slice(0, 5)) {
      expect(text).not.toContain(secret);
      expect(text).not.toContain(fresh);
    }
  });
});

test("the secret sweep: every gateway's log is non-empty and holds no master, admin or client key", () => {
  expectNoSecretsInLogs();
});
