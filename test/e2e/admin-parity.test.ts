import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
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

// Every operation from the CLI and from the API gives the same result: both
// run the same operation functions, and this checks it from the outside.

const ADMIN_KEY = "admin-parity-0123456789abcdef";
const chat = { model: "glm-4.7", messages: [{ role: "user" as const, content: "hello" }] };
type Json = Record<string, unknown>;

let mock: MockUpstream;
let gw: GatewayProcess;

beforeAll(async () => {
  mock = await startMockUpstream();
  // A time zone ahead of UTC, for the server and every CLI run: a date-time
  // without an offset must still mean UTC in both.
  gw = await startGateway({ mock, env: { ADMIN_API_KEY: ADMIN_KEY, TZ: "Europe/Berlin" } });
}, HOOK_TIMEOUT_MS);
afterAll(async () => {
  await gw?.close();
  await mock?.stop();
}, HOOK_TIMEOUT_MS);

async function cliJson(args: string[]): Promise<Json> {
  const r = await gw.cli([...args, "--json"]);
  expect(r.stderr).toBe("");
  expect(r.code).toBe(0);
  return JSON.parse(r.stdout) as Json;
}

async function apiJson(path: string): Promise<Json> {
  const r = await gw.admin("GET", path);
  expect(r.status).toBe(200);
  return r.body;
}

/** Fields that move with time between two reads (none in these tests move, but `now` does). */
function stable(value: unknown): unknown {
  return JSON.parse(JSON.stringify(value), (k, v) => (k === "window_resets_at" ? "(volatile)" : v));
}

describe("CLI and API agree", () => {
  let cliKey: Json & { id: string; key: string };
  let apiKey: Json & { id: string; key: string };
  const tag = `par${Date.now().toString(36)}`;

  beforeAll(async () => {
    cliKey = (await cliJson([
      "keys",
      "create",
      "--name",
      `${tag}-cli`,
      "--limit",
      "5000",
      "--model",
      "glm-4.6",
    ])) as typeof cliKey;
    const r = await gw.admin<typeof apiKey>("POST", "/admin/keys", {
      name: `${tag}-api`,
      token_limit_per_5h: 7000,
      expires_at: "2099-06-30T12:00:00Z",
    });
    apiKey = r.body;
    gw.secrets.push(cliKey.key, apiKey.key);
    // Usage on both, through the proxy, flushed to the database.
    for (const secret of [cliKey.key, apiKey.key, apiKey.key]) {
      await gw.openai(secret, { maxRetries: 0 }).chat.completions.create(chat);
    }
    await waitFor("usage in the database", async () => {
      const k = await apiJson(`/admin/keys/${apiKey.id}`);
      return k.total_requests === 2 ? true : undefined;
    });
  }, HOOK_TIMEOUT_MS);

  test("create answers the same shape from both", () => {
    expect(Object.keys(cliKey).sort()).toEqual(Object.keys(apiKey).sort());
  });

  test("one expiry text is one instant from both, under TZ=Europe/Berlin", async () => {
    const create = (expires: string) =>
      `keys create --name tz-parity --limit 1 --expires ${expires}`.split(" ");
    const texts = [
      "2027-01-31T18:00",
      "2027-01-31T18:00:00",
      "2027-07-01",
      "2027-01-31T18:00+02:00",
    ];
    const seen: unknown[] = [];
    for (const text of texts) {
      const viaCli = await cliJson(create(text));
      const viaApi = await gw.admin<Json>("POST", "/admin/keys", {
        name: "tz-parity",
        token_limit_per_5h: 1,
        expires_at: text,
      });
      gw.secrets.push(String(viaCli.key), String(viaApi.body.key));
      expect(viaCli.expires_at).toBe(viaApi.body.expires_at);
      seen.push(viaCli.expires_at);
    }
    // No offset is UTC, not Berlin's 17:00Z.
    expect(seen[0]).toBe("2027-01-31T18:00:00.000Z");
    // A day February lacks is refused by both, not rolled over into March.
    const cli = await gw.cli(create("2027-02-30"));
    expect(cli.code).not.toBe(0);
    expect(cli.stderr).toContain("not a valid date: 2027-02-30");
    const api = await gw.admin("POST", "/admin/keys", {
      name: "x",
      token_limit_per_5h: 1,
      expires_at: "2027-02-30",
    });
    expect(api.status).toBe(400);
    expect(api.text).toContain("not a valid date: 2027-02-30");
  });

  test("keys list, with and without filters", async () => {
    for (const [args, query] of [
      [["--search", tag], `search=${tag}`],
      [
        ["--search", tag, "--status", "active", "--limit", "1", "--offset", "1"],
        `search=${tag}&status=active&limit=1&offset=1`,
      ],
      [["--model", "glm-4.6", "--search", tag], `model=glm-4.6&search=${tag}`],
      [["--status", "disabled"], "status=disabled"],
    ] as const) {
      const cli = await cliJson(["keys", "list", ...args]);
      const api = await apiJson(`/admin/keys?${query}`);
      expect(stable(cli)).toEqual(stable(api));
    }
    const all = await apiJson(`/admin/keys?search=${tag}`);
    expect(
      (all.keys as Json[]).map((k) => (k.usage as Json).tokens_used_in_current_window),
    ).toEqual([32, 16]);
  });

  test("keys show", async () => {
    for (const k of [cliKey, apiKey]) {
      expect(stable(await cliJson(["keys", "show", k.id]))).toEqual(
        stable(await apiJson(`/admin/keys/${k.id}`)),
      );
    }
  });

  test("keys usage and usage, over the same range and step", async () => {
    // Ends are floored to the step: end after the current hour, so the usage is inside.
    const to = new Date(Math.floor(Date.now() / 3600_000) * 3600_000 + 3600_000).toISOString();
    const from = new Date(Date.parse(to) - 3 * 3600_000).toISOString();
    for (const step of ["5m", "1h"]) {
      const range = ["--from", from, "--to", to, "--step", step];
      const q = `from=${from}&to=${to}&step=${step}`;
      const cli = await cliJson(["keys", "usage", apiKey.id, ...range]);
      expect(cli).toEqual(await apiJson(`/admin/keys/${apiKey.id}/usage?${q}`));
      expect(cli).toMatchObject({ key_id: apiKey.id, total_tokens: 32, total_requests: 2 });
      const totalsCli = await cliJson(["usage", ...range]);
      expect(totalsCli).toEqual(await apiJson(`/admin/usage?${q}`));
      expect(totalsCli.total_tokens).toBe(48);
    }
  });

  test("an update through either is seen the same through both", async () => {
    await cliJson(["keys", "update", apiKey.id, "--limit", "9000", "--no-model"]);
    const viaApi = await gw.admin("PATCH", `/admin/keys/${cliKey.id}`, {
      name: `${tag}-cli-renamed`,
    });
    expect(viaApi.status).toBe(200);
    for (const k of [cliKey, apiKey]) {
      expect(stable(await cliJson(["keys", "show", k.id]))).toEqual(
        stable(await apiJson(`/admin/keys/${k.id}`)),
      );
    }
    expect((await apiJson(`/admin/keys/${apiKey.id}`)).token_limit_per_5h).toBe(9000);
  });

  test("rotate and delete answer the same shape; bad input is refused by both", async () => {
    const viaCli = await cliJson(["keys", "rotate", cliKey.id]);
    const viaApi = (await gw.admin<Json>("POST", `/admin/keys/${apiKey.id}/rotate`)).body;
    gw.secrets.push(String(viaCli.key), String(viaApi.key));
    expect(Object.keys(viaCli).sort()).toEqual(Object.keys(viaApi).sort());
    const bad = await gw.cli(["keys", "usage", apiKey.id, "--step", "2h"]);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toBe("error: step: must be one of 5m, 15m, 1h, 6h, 1d\n");
    const badList = await gw.cli(["keys", "list", "--limit", "501"]);
    expect(badList.stderr).toBe("error: limit: must be at most 500\n");
    const revokedViaCli = await cliJson(["keys", "delete", cliKey.id, "--yes"]);
    const revokedViaApi = (await gw.admin<Json>("DELETE", `/admin/keys/${apiKey.id}`)).body;
    expect(revokedViaCli).toMatchObject({ id: cliKey.id, revoked: true });
    expect(revokedViaApi).toMatchObject({ id: apiKey.id, revoked: true });
    expect(Object.keys(revokedViaCli).sort()).toEqual(Object.keys(revokedViaApi).sort());
    const gone = await gw
      .openai(String(viaApi.key), { maxRetries: 0 })
      .chat.completions.create(chat)
      .catch((e: unknown) => e);
    expect(gone).toBeInstanceOf(OpenAI.AuthenticationError);
  });
});

describe("the key holder's own history", () => {
  test("/stats/usage: the same series as the admin's, with the masked key instead of the id", async () => {
    const k = (
      await gw.admin<Json & { id: string; key: string; prefix: string }>("POST", "/admin/keys", {
        name: "holder",
        token_limit_per_5h: 1000,
      })
    ).body;
    gw.secrets.push(k.key);
    await gw.openai(k.key, { maxRetries: 0 }).chat.completions.create(chat);
    await gw.statsWhen(k.key, { tokens: 16, requests: 1 });
    const q = `step=5m&from=${new Date(Date.now() - 3600_000).toISOString()}`;
    // History is read from the database, a flush (tens of ms) after /stats shows it.
    const own = await waitFor("the usage in the history", async () => {
      const res = await gw.fetch(`/stats/usage?${q}`, {
        headers: { authorization: `Bearer ${k.key}` },
      });
      expect(res.status).toBe(200);
      const body = (await res.json()) as Json;
      return body.total_tokens === 16 ? body : undefined;
    });
    const { key_id, ...admin } = await apiJson(`/admin/keys/${k.id}/usage?${q}`);
    expect(key_id).toBe(k.id);
    expect(own).toEqual({ key: `${k.prefix}…`, ...admin });
    expect(own.total_tokens).toBe(16);
    expect(JSON.stringify(own)).not.toContain(k.key);

    // Retention bounds how far back it reaches; bad input and no key are refused.
    const old = await gw.fetch("/stats/usage?step=1d&from=2000-01-01", {
      headers: { authorization: `Bearer ${k.key}` },
    });
    const oldBody = (await old.json()) as { from: string; points: unknown[] };
    expect(Date.now() - Date.parse(oldBody.from)).toBeLessThanOrEqual(31 * 86_400_000);
    expect(oldBody.points.length).toBeLessThanOrEqual(32);
    // A range wholly before what is kept, or starting in the future, is refused, not moved.
    const refused = async (query: string, message: RegExp) => {
      const res = await gw.fetch(`/stats/usage?${query}`, {
        headers: { authorization: `Bearer ${k.key}` },
      });
      expect(res.status).toBe(400);
      const body = (await res.json()) as { error: { code: string; message: string } };
      expect(body.error.code).toBe("invalid_request");
      expect(body.error.message).toMatch(message);
    };
    await refused(
      "step=1d&from=2000-01-01&to=2000-02-01",
      /^to: the range ends before .* the oldest usage kept/,
    );
    const tomorrow = new Date(Date.now() + 86_400_000).toISOString();
    await refused(`from=${tomorrow}`, /^from: must not be in the future/);
    const future = await gw.admin("GET", `/admin/keys/${k.id}/usage?from=${tomorrow}`);
    expect(future.status).toBe(400);
    expect(future.body).toMatchObject({ error: { code: "validation_error" } });
    const bad = await gw.fetch("/stats/usage?step=7m", {
      headers: { authorization: `Bearer ${k.key}` },
    });
    expect(bad.status).toBe(400);
    expect(await bad.json()).toMatchObject({
      error: { code: "invalid_request", message: "step: must be one of 5m, 15m, 1h, 6h, 1d" },
    });
    expect((await gw.fetch("/stats/usage")).status).toBe(401);
    // A disabled key may still look at its own history, and /stats says it is disabled.
    expect((await gw.stats(k.key)) as unknown as Json).toMatchObject({
      is_disabled: false,
      is_expired: false,
    });
    await gw.admin("PATCH", `/admin/keys/${k.id}`, { disabled: true });
    expect((await gw.stats(k.key)) as unknown as Json).toMatchObject({
      is_disabled: true,
      is_expired: false,
    });
    const disabled = await gw.fetch("/stats/usage", {
      headers: { authorization: `Bearer ${k.key}` },
    });
    expect(disabled.status).toBe(200);
  });
});

test("the secret sweep: every gateway's log is non-empty and holds no master, admin or client key", () => {
  expectNoSecretsInLogs();
});
