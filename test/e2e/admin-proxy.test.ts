import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import {
  E2E_TIMEOUT_MS,
  expectNoSecretsInLogs,
  type GatewayProcess,
  HOOK_TIMEOUT_MS,
  startGateway,
} from "../harness/gateway.ts";

setDefaultTimeout(E2E_TIMEOUT_MS);

// The admin surface behind a reverse proxy, and the credentials a browser or
// a proxy may send along, over real HTTP. Both gateways listen on both
// stacks: 127.0.0.1 and ::1 are two peers. `proxied` trusts 127.0.0.1 as its
// reverse proxy (TRUSTED_PROXIES); `direct` trusts no one. They have
// different admin keys, so a cookie from one is, for the other, a cookie from
// before an admin-key change.

const DIRECT_KEY = "admin-direct-0123456789abcdef";
const PROXIED_KEY = "admin-proxied-0123456789abcdef";
/** A wrong admin key: once an address is blocked, guesses like it get 429. */
const GUESS = "a-wrong-guess-0123456789abcdef";
let direct: GatewayProcess;
let proxied: GatewayProcess;

beforeAll(async () => {
  [direct, proxied] = await Promise.all([
    startGateway({ env: { ADMIN_API_KEY: DIRECT_KEY, HOST: "::" } }),
    startGateway({ env: { ADMIN_API_KEY: PROXIED_KEY, HOST: "::", TRUSTED_PROXIES: "127.0.0.1" } }),
  ]);
}, HOOK_TIMEOUT_MS);
afterAll(async () => {
  await Promise.all([direct?.close(), proxied?.close()]);
}, HOOK_TIMEOUT_MS);

const v6 = (gw: GatewayProcess) => `http://[::1]:${new URL(gw.url).port}`;
const bearer = (key: string) => ({ authorization: `Bearer ${key}` });
const json = { "content-type": "application/json" };

/** POST /admin/session; the cookie (name=value) and CSRF token, with the raw answer. */
async function signIn(base: string, adminKey: string, headers: Record<string, string> = {}) {
  const res = await fetch(`${base}/admin/session`, {
    method: "POST",
    headers: { ...json, ...headers },
    body: JSON.stringify({ admin_key: adminKey }),
  });
  const setCookie = res.headers.get("set-cookie") ?? "";
  const body = (await res.json()) as { csrf_token?: string };
  return {
    status: res.status,
    setCookie,
    cookie: setCookie.split(";")[0] ?? "",
    csrf: body.csrf_token ?? "",
  };
}

/** A wrong admin key at sign-in: a failed attempt. */
const wrongSignIn = (base: string, headers: Record<string, string> = {}) =>
  fetch(`${base}/admin/session`, {
    method: "POST",
    headers: { ...json, ...headers },
    body: JSON.stringify({ admin_key: "wrong-0123456789abcdef" }),
  }).then((r) => r.status);

const listKeys = (base: string, headers: Record<string, string>) =>
  fetch(`${base}/admin/keys`, { headers }).then((r) => r.status);

describe("forwarding headers from a peer that is not a trusted proxy are ignored", () => {
  test("X-Forwarded-Proto: https does not make the cookie Secure", async () => {
    const s = await signIn(direct.url, DIRECT_KEY, { "x-forwarded-proto": "https" });
    expect(s.status).toBe(200);
    expect(s.setCookie).not.toContain("Secure");
  });

  test("X-Forwarded-Host does not stand for our host in the CSRF origin check", async () => {
    const s = await signIn(direct.url, DIRECT_KEY);
    const patch = (headers: Record<string, string>) =>
      fetch(`${direct.url}/admin/session`, {
        method: "DELETE",
        headers: { cookie: s.cookie, "x-csrf-token": s.csrf, ...headers },
      }).then((r) => r.status);
    expect(
      await patch({ origin: "https://public.example", "x-forwarded-host": "public.example" }),
    ).toBe(403);
    // Its own Host still is ours.
    expect(await patch({ origin: `http://${new URL(direct.url).host}` })).toBe(204);
  });

  test("X-Forwarded-For does not give a client a fresh address per request", async () => {
    for (let i = 0; i < 10; i++) {
      expect(await wrongSignIn(v6(direct), { "x-forwarded-for": `198.51.100.${i}` })).toBe(401);
    }
    const blocked = await fetch(`${v6(direct)}/admin/keys`, {
      headers: { ...bearer(GUESS), "x-forwarded-for": "198.51.100.200" },
    });
    expect(blocked.status).toBe(429);
    // Counted against the peer, ::1, whatever the header claimed; 127.0.0.1 is another peer.
    expect(await listKeys(direct.url, bearer(DIRECT_KEY))).toBe(200);
    const warning = direct.logLines().find((l) => l.msg === "admin authentication failed");
    expect(warning?.address).toBe("::1");
  });
});

describe("behind a trusted proxy", () => {
  test("X-Forwarded-Proto: https makes the cookie Secure", async () => {
    const s = await signIn(proxied.url, PROXIED_KEY, { "x-forwarded-proto": "https" });
    expect(s.setCookie).toContain("Secure");
    expect((await signIn(proxied.url, PROXIED_KEY)).setCookie).not.toContain("Secure");
  });

  test("X-Forwarded-Host is the host the CSRF origin check compares with", async () => {
    const s = await signIn(proxied.url, PROXIED_KEY);
    const create = (headers: Record<string, string>) =>
      fetch(`${proxied.url}/admin/keys`, {
        method: "POST",
        headers: { ...json, cookie: s.cookie, "x-csrf-token": s.csrf, ...headers },
        body: JSON.stringify({ name: "via-proxy", token_limit_per_5h: 5 }),
      }).then((r) => r.status);
    const forwarded = { "x-forwarded-host": "gateway.example", "x-forwarded-proto": "https" };
    expect(await create({ ...forwarded, origin: "https://gateway.example" })).toBe(201);
    expect(await create({ ...forwarded, origin: "https://evil.example" })).toBe(403);
    // The proxy's own view of the host is not the browser's.
    expect(await create({ ...forwarded, origin: `http://${new URL(proxied.url).host}` })).toBe(403);
  });

  test("the limit counts the client named by X-Forwarded-For, and a success does not wipe the count", async () => {
    const client = { "x-forwarded-for": "203.0.113.7" };
    for (let i = 0; i < 9; i++) expect(await wrongSignIn(proxied.url, client)).toBe(401);
    // A script polling with the right key from the same address...
    expect(await listKeys(proxied.url, { ...bearer(PROXIED_KEY), ...client })).toBe(200);
    expect((await signIn(proxied.url, PROXIED_KEY, client)).status).toBe(200);
    // ...does not give the guesser a fresh ten: the tenth failure blocks.
    expect(await wrongSignIn(proxied.url, client)).toBe(401);
    const blocked = await fetch(`${proxied.url}/admin/keys`, {
      headers: { ...bearer(GUESS), ...client },
    });
    expect(blocked.status).toBe(429);
    // The right key is never refused, even from the blocked address.
    expect(await listKeys(proxied.url, { ...bearer(PROXIED_KEY), ...client })).toBe(200);
    expect(Number(blocked.headers.get("retry-after"))).toBeGreaterThan(0);
    // An address the client writes in front of the proxy's entry changes nothing.
    const spoofed = { "x-forwarded-for": "192.0.2.50, 203.0.113.7" };
    expect(await listKeys(proxied.url, { ...bearer(GUESS), ...spoofed })).toBe(429);
    // Other clients behind the same proxy, and the proxy itself, go on.
    expect(
      await listKeys(proxied.url, { ...bearer(PROXIED_KEY), "x-forwarded-for": "203.0.113.8" }),
    ).toBe(200);
    expect(await listKeys(proxied.url, bearer(PROXIED_KEY))).toBe(200);
    const warnings = proxied.logLines().filter((l) => l.msg === "admin authentication failed");
    expect(warnings.at(-1)).toMatchObject({ address: "203.0.113.7", proxy: "127.0.0.1" });
  });

  test("IPv6 clients are counted by their /64", async () => {
    for (let i = 1; i <= 10; i++) {
      expect(await wrongSignIn(proxied.url, { "x-forwarded-for": `2001:db8:1:2::${i}` })).toBe(401);
    }
    const sameNet = { ...bearer(GUESS), "x-forwarded-for": "2001:db8:1:2:ffff::1" };
    expect(await listKeys(proxied.url, sameNet)).toBe(429);
    const otherNet = { ...bearer(PROXIED_KEY), "x-forwarded-for": "2001:db8:1:3::1" };
    expect(await listKeys(proxied.url, otherNet)).toBe(200);
  });

  test("a peer outside TRUSTED_PROXIES is not believed", async () => {
    // ::1 is not the trusted proxy: its X-Forwarded-Proto is ignored.
    const s = await signIn(v6(proxied), PROXIED_KEY, { "x-forwarded-proto": "https" });
    expect(s.status).toBe(200);
    expect(s.setCookie).not.toContain("Secure");
  });
});

describe("credentials sent along", () => {
  test("a proxy's Basic Authorization beside a valid session cookie: the cookie decides, nothing is counted", async () => {
    const basic = { authorization: `Basic ${btoa("operator:proxy-password")}` };
    const s = await signIn(direct.url, DIRECT_KEY);
    const withCookie = { ...basic, cookie: s.cookie };
    expect(await listKeys(direct.url, withCookie)).toBe(200);
    const session = await fetch(`${direct.url}/admin/session`, { headers: withCookie });
    expect(session.status).toBe(200);
    expect(((await session.json()) as { csrf_token: string }).csrf_token).toBe(s.csrf);
    const created = await fetch(`${direct.url}/admin/keys`, {
      method: "POST",
      headers: { ...withCookie, ...json, "x-csrf-token": s.csrf },
      body: JSON.stringify({ name: "behind-basic-auth", token_limit_per_5h: 5 }),
    });
    expect(created.status).toBe(201);
    // Basic alone is no admin credential, but no guess at the admin key either.
    // (127.0.0.1 has no failures yet: the ones above were made from ::1.)
    for (let i = 0; i < 12; i++) expect(await listKeys(direct.url, basic)).toBe(401);
    expect(await listKeys(direct.url, bearer(DIRECT_KEY))).toBe(200);
  });

  test("a cookie from before an admin-key change: 401 that clears it, not counted; sign-in still works", async () => {
    const stale = (await signIn(direct.url, DIRECT_KEY)).cookie;
    const base = v6(proxied);
    for (const [method, path] of [
      ["GET", "/admin/session"],
      ["GET", "/admin/keys"],
    ] as const) {
      for (let i = 0; i < 6; i++) {
        const res = await fetch(`${base}${path}`, { method, headers: { cookie: stale } });
        expect(res.status).toBe(401);
        expect(await res.json()).toMatchObject({ error: { code: "unauthorized" } });
        expect(res.headers.get("set-cookie")).toMatch(/^tollgate_session=; Max-Age=0; Path=\//);
      }
    }
    // Twelve refusals, none counted as a guess: the address is not blocked.
    expect(await listKeys(base, bearer(PROXIED_KEY))).toBe(200);
    // The page signs in again with the new key, the stale cookie still sent along.
    const res = await fetch(`${base}/admin/session`, {
      method: "POST",
      headers: { ...json, cookie: stale },
      body: JSON.stringify({ admin_key: PROXIED_KEY }),
    });
    expect(res.status).toBe(200);
    const fresh = (res.headers.get("set-cookie") ?? "").split(";")[0] ?? "";
    expect(fresh).toMatch(/^tollgate_session=v1\./);
    expect((await fetch(`${base}/admin/session`, { headers: { cookie: fresh } })).status).toBe(200);
  });
});

test("the secret sweep: every gateway's log is non-empty and holds no master, admin or client key", () => {
  expectNoSecretsInLogs();
});
