import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { type IncomingHttpHeaders, request } from "node:http";
import {
  E2E_TIMEOUT_MS,
  expectNoSecretsInLogs,
  type GatewayProcess,
  HOOK_TIMEOUT_MS,
  startGateway,
} from "../harness/gateway.ts";

setDefaultTimeout(E2E_TIMEOUT_MS);

// What a user of the admin surface notices about its security, over real HTTP.

const ADMIN_KEY = "admin-security-0123456789abcdef";
let gw: GatewayProcess;
let off: GatewayProcess;

beforeAll(async () => {
  // Listening on both stacks, so 127.0.0.1 and ::1 are two client addresses.
  [gw, off] = await Promise.all([
    startGateway({ env: { ADMIN_API_KEY: ADMIN_KEY, HOST: "::" } }),
    startGateway({ env: { ADMIN_API_KEY: undefined } }),
  ]);
}, HOOK_TIMEOUT_MS);
afterAll(async () => {
  await Promise.all([gw?.close(), off?.close()]);
}, HOOK_TIMEOUT_MS);

const bearer = (key: string) => ({ authorization: `Bearer ${key}` });
const keyCount = async () => (await gw.admin<{ total: number }>("GET", "/admin/keys")).body.total;

interface Signed {
  cookie: string;
  csrf: string;
  setCookie: string;
}

async function signIn(): Promise<Signed> {
  const res = await gw.fetch("/admin/session", {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ admin_key: ADMIN_KEY }),
  });
  expect(res.status).toBe(200);
  const setCookie = res.headers.get("set-cookie") ?? "";
  const body = (await res.json()) as { csrf_token: string; expires_at: string };
  return { cookie: setCookie.split(";")[0] ?? "", csrf: body.csrf_token, setCookie };
}

describe("without ADMIN_API_KEY the admin surface does not exist", () => {
  test("/admin/keys, /admin/openapi.json, /admin/session and /dashboard answer 404", async () => {
    for (const path of ["/admin/keys", "/admin/openapi.json", "/admin/session", "/dashboard"]) {
      const res = await off.fetch(path, { headers: bearer(ADMIN_KEY) });
      expect(res.status).toBe(404);
    }
    const post = await off.fetch("/admin/keys", { method: "POST", headers: bearer(ADMIN_KEY) });
    expect(post.status).toBe(404);
  });
});

describe("admin key", () => {
  test("missing or wrong key: 401 with WWW-Authenticate, a wrong one logged at warn without the key", async () => {
    const wrong = `${ADMIN_KEY.slice(0, -1)}X`;
    const cases: Array<Record<string, string>> = [{}, bearer(wrong), { authorization: ADMIN_KEY }];
    for (const headers of cases) {
      const res = await gw.fetch("/admin/keys", { headers });
      expect(res.status).toBe(401);
      expect(res.headers.get("www-authenticate")).toBe("Bearer");
      expect(await res.json()).toMatchObject({ error: { code: "unauthorized" } });
    }
    // An API key of a holder is no admin key either.
    const k = await gw.admin<{ key: string }>("POST", "/admin/keys", {
      name: "holder",
      token_limit_per_5h: 5,
    });
    gw.secrets.push(k.body.key);
    expect((await gw.fetch("/admin/keys", { headers: bearer(k.body.key) })).status).toBe(401);
    const failed = gw.logLines().filter((l) => l.msg === "admin authentication failed");
    const warnings = failed.filter((l) => l.reason !== "missing credentials");
    expect(warnings.length).toBeGreaterThanOrEqual(1);
    for (const w of warnings) {
      expect(w.level === 40 || w.level === "warn").toBe(true);
      expect(String(w.address)).toContain("127.0.0.1");
    }
    // No credentials at all (the dashboard opened before signing in) is routine: info.
    const unsigned = failed.filter((l) => l.reason === "missing credentials");
    expect(unsigned.length).toBeGreaterThanOrEqual(1);
    for (const l of unsigned) expect(l.level === 30 || l.level === "info").toBe(true);
    const logs = gw.stdout + gw.stderr;
    expect(logs).not.toContain(wrong);
    expect(logs).not.toContain(ADMIN_KEY);
    expect(logs).not.toContain(k.body.key);
  });

  test("the OpenAPI document is public and lists every operation", async () => {
    const res = await gw.fetch("/admin/openapi.json");
    expect(res.status).toBe(200);
    const doc = (await res.json()) as {
      openapi: string;
      paths: Record<string, Record<string, unknown>>;
    };
    expect(doc.openapi).toBe("3.1.0");
    expect(Object.keys(doc.paths).sort()).toEqual(
      [
        "/admin/audit",
        "/admin/keys",
        "/admin/keys/{id}",
        "/admin/keys/{id}/purge",
        "/admin/keys/{id}/rotate",
        "/admin/keys/{id}/usage",
        "/admin/session",
        "/admin/usage",
      ].sort(),
    );
    expect(Object.keys(doc.paths["/admin/keys/{id}"] ?? {}).sort()).toEqual([
      "delete",
      "get",
      "patch",
    ]);
  });

  test("no CORS on /admin, even for an allowed origin; /v1 and /stats keep theirs", async () => {
    const origin = { origin: "https://elsewhere.example" };
    const admin = await gw.fetch("/admin/keys", { headers: { ...origin, ...bearer(ADMIN_KEY) } });
    expect(admin.headers.get("access-control-allow-origin")).toBeNull();
    const preflight = await gw.fetch("/admin/keys", {
      method: "OPTIONS",
      headers: { ...origin, "access-control-request-method": "POST" },
    });
    expect(preflight.headers.get("access-control-allow-origin")).toBeNull();
    for (const path of ["/v1/models", "/stats", "/stats/usage"]) {
      const res = await gw.fetch(path, { headers: origin });
      expect(res.headers.get("access-control-allow-origin")).toBe("*");
    }
  });
});

describe("dashboard session", () => {
  test("sign-in sets an HttpOnly, SameSite=Strict cookie for 8 hours; GET /admin/session reads it", async () => {
    const s = await signIn();
    expect(s.setCookie).toMatch(/^tollgate_session=[^;]+/);
    expect(s.setCookie).toContain("HttpOnly");
    expect(s.setCookie).toContain("SameSite=Strict");
    expect(s.setCookie).toContain("Path=/");
    expect(s.setCookie).toContain("Max-Age=28800");
    expect(s.setCookie).not.toContain("Secure"); // plain http here
    const res = await gw.fetch("/admin/session", { headers: { cookie: s.cookie } });
    expect(res.status).toBe(200);
    const body = (await res.json()) as { csrf_token: string; expires_at: string };
    expect(body.csrf_token).toBe(s.csrf);
    expect(Date.parse(body.expires_at) - Date.now()).toBeGreaterThan(7.9 * 3600_000);
    expect((await gw.fetch("/admin/session")).status).toBe(401);
    // The cookie is enough to read.
    expect((await gw.fetch("/admin/keys", { headers: { cookie: s.cookie } })).status).toBe(200);
  });

  // X-Forwarded-Proto and -Host, and TRUSTED_PROXIES: admin-proxy.test.ts.

  test("cookie mutations need the session's X-CSRF-Token and our origin; otherwise 403 and nothing changes", async () => {
    const s = await signIn();
    const other = await signIn();
    const target = await gw.admin<{ id: string }>("POST", "/admin/keys", {
      name: "csrf-target",
      token_limit_per_5h: 5,
    });
    const id = target.body.id;
    const before = await keyCount();
    const attempts: Array<[string, string, Record<string, string>]> = [];
    const variants: Array<Record<string, string>> = [
      {},
      { "x-csrf-token": "wrong" },
      // Another session's token does not fit this session.
      { "x-csrf-token": other.csrf },
      { "x-csrf-token": s.csrf, origin: "https://evil.example" },
      { "x-csrf-token": s.csrf, origin: "null" },
    ];
    for (const headers of variants) {
      attempts.push(["POST", "/admin/keys", headers], ["PATCH", `/admin/keys/${id}`, headers]);
      attempts.push(
        ["POST", `/admin/keys/${id}/rotate`, headers],
        ["DELETE", `/admin/keys/${id}`, headers],
      );
      attempts.push(["DELETE", "/admin/session", headers]);
    }
    for (const [method, path, headers] of attempts) {
      const res = await gw.fetch(path, {
        method,
        headers: { cookie: s.cookie, "content-type": "application/json", ...headers },
        body:
          method === "DELETE" || path.endsWith("rotate")
            ? undefined
            : JSON.stringify({ name: "csrf-made", token_limit_per_5h: 5 }),
      });
      expect(res.status).toBe(403);
      expect(await res.json()).toMatchObject({ error: { code: "csrf_failed" } });
    }
    expect(await keyCount()).toBe(before);
    const still = await gw.admin("GET", `/admin/keys/${id}`);
    expect(still.body.name).toBe("csrf-target");
    expect(still.body.prefix).toBe((target.body as unknown as { prefix: string }).prefix);

    // With the token and our own origin (or none) it goes through.
    const own = new URL(gw.url).origin;
    const ok = await gw.fetch(`/admin/keys/${id}`, {
      method: "PATCH",
      headers: {
        cookie: s.cookie,
        "content-type": "application/json",
        "x-csrf-token": s.csrf,
        origin: own,
      },
      body: JSON.stringify({ name: "renamed-by-session" }),
    });
    expect(ok.status).toBe(200);
    expect(((await ok.json()) as { name: string }).name).toBe("renamed-by-session");
  });

  test("sign-out clears the cookie", async () => {
    const s = await signIn();
    const res = await gw.fetch("/admin/session", {
      method: "DELETE",
      headers: { cookie: s.cookie, "x-csrf-token": s.csrf },
    });
    expect(res.status).toBe(204);
    expect(res.headers.get("set-cookie")).toMatch(/^tollgate_session=;.*Max-Age=0/);
  });

  test("a forged or altered cookie is refused, and the browser told to drop it", async () => {
    const s = await signIn();
    const altered = `${s.cookie.slice(0, -3)}abc`;
    for (const cookie of [
      altered,
      "tollgate_session=v1.zzzzzzzz.nonce.sig",
      "tollgate_session=junk",
    ]) {
      const res = await gw.fetch("/admin/keys", { headers: { cookie } });
      expect(res.status).toBe(401);
      expect(res.headers.get("set-cookie")).toMatch(/^tollgate_session=;.*Max-Age=0/);
    }
  });
});

/**
 * A request from another loopback source address: the gateway counts failed
 * attempts per address, and this file's other tests fail from 127.0.0.1.
 * (fetch cannot choose its source address; node:http can.)
 */
function requestFrom(
  localAddress: string,
  path: string,
  init: { method?: string; headers?: Record<string, string>; body?: string } = {},
): Promise<{ status: number; headers: IncomingHttpHeaders; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: "127.0.0.1",
        port: Number(new URL(gw.url).port),
        path,
        method: init.method ?? "GET",
        headers: init.headers,
        localAddress,
      },
      (res) => {
        let body = "";
        res.setEncoding("utf8");
        res.on("data", (d: string) => {
          body += d;
        });
        res.on("end", () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
      },
    );
    req.on("error", reject);
    req.end(init.body);
  });
}

describe("failed-attempt limit", () => {
  test("after 10 failures a wrong key gets 429 with Retry-After; the right key, sign-in with it and a valid session still work", async () => {
    const session = await signIn();
    // A source address no other test used: its count starts at 0.
    const from = "127.0.0.2";
    const tryKey = (adminKey: string) =>
      requestFrom(from, "/admin/session", {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ admin_key: adminKey }),
      });
    const statuses: number[] = [];
    for (let i = 0; i < 10; i++)
      statuses.push((await tryKey(`wrong-${i}-0123456789abcdef`)).status);
    // Ten failures are each refused as such; the limit is not hit before the tenth.
    expect(statuses).toEqual(Array(10).fill(401));
    const blocked = await requestFrom(from, "/admin/keys", {
      headers: bearer("wrong-again-0123456789abcdef"),
    });
    expect(blocked.status).toBe(429);
    expect(JSON.parse(blocked.body)).toMatchObject({ error: { code: "too_many_attempts" } });
    const retry = Number(blocked.headers["retry-after"]);
    expect(retry).toBeGreaterThan(0);
    expect(retry).toBeLessThanOrEqual(15 * 60);
    expect((await tryKey("wrong-again-0123456789abcdef")).status).toBe(429);

    // The operator is not locked out by someone else's guesses from that address.
    expect((await requestFrom(from, "/admin/keys", { headers: bearer(ADMIN_KEY) })).status).toBe(
      200,
    );
    const signedIn = await tryKey(ADMIN_KEY);
    expect(signedIn.status).toBe(200);
    expect(String(signedIn.headers["set-cookie"])).toStartWith("tollgate_session=");
    const bySession = await requestFrom(from, "/admin/keys", {
      headers: { cookie: session.cookie },
    });
    expect(bySession.status).toBe(200);

    const elsewhere = await requestFrom("127.0.0.3", "/admin/keys", { headers: bearer(ADMIN_KEY) });
    expect(elsewhere.status).toBe(200);
    const v6 = `http://[::1]:${new URL(gw.url).port}`;
    expect((await fetch(`${v6}/admin/keys`, { headers: bearer(ADMIN_KEY) })).status).toBe(200);
    // The proxy and stats are not behind the admin limit.
    expect((await requestFrom(from, "/health")).status).toBe(200);
  });
});

test("the secret sweep: every gateway's log is non-empty and holds no master, admin or client key", () => {
  expectNoSecretsInLogs();
});
