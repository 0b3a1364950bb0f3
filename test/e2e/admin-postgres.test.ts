import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import {
  E2E_TIMEOUT_MS,
  expectNoSecretsInLogs,
  type GatewayProcess,
  startGateway,
  waitFor,
} from "../harness/gateway.ts";
import { type MockUpstream, startMockUpstream } from "../harness/mock-upstream.ts";
import { type TestDatabase, testPostgres } from "../harness/postgres.ts";
import { describeNeedingPostgres, NEEDS_SERVER } from "../harness/require-postgres.ts";

setDefaultTimeout(E2E_TIMEOUT_MS);

// The admin API on PostgreSQL with two instances sharing the database and the
// admin key, as behind a load balancer.

const pg = await testPostgres();
const ADMIN_KEY = "admin-pg-0123456789abcdef012345";
const chat = (gw: GatewayProcess, key: string) =>
  gw.fetch("/v1/chat/completions", {
    method: "POST",
    headers: { authorization: `Bearer ${key}`, "content-type": "application/json" },
    body: JSON.stringify({ model: "glm-4.7", messages: [{ role: "user", content: "hi" }] }),
  });
type Json = Record<string, unknown>;

describeNeedingPostgres(
  "admin API on PostgreSQL, two instances",
  pg.shared ? undefined : NEEDS_SERVER,
  () => {
    let mock: MockUpstream;
    let db: TestDatabase;
    let a: GatewayProcess;
    let b: GatewayProcess;

    beforeAll(async () => {
      mock = await startMockUpstream({ record: false });
      db = await pg.create();
      const env = { DATABASE_URL: db.url, ADMIN_API_KEY: ADMIN_KEY };
      a = await startGateway({ mock, env });
      b = await startGateway({ mock, env });
    }, 30_000);
    afterAll(async () => {
      await a?.close();
      await b?.close();
      await db?.drop();
      await mock?.stop();
    }, 30_000);

    test("a session signed in on one instance is accepted by the other", async () => {
      const res = await a.fetch("/admin/session", {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ admin_key: ADMIN_KEY }),
      });
      const cookie = (res.headers.get("set-cookie") ?? "").split(";")[0] ?? "";
      const { csrf_token } = (await res.json()) as { csrf_token: string };
      const made = await b.fetch("/admin/keys", {
        method: "POST",
        headers: { cookie, "x-csrf-token": csrf_token, "content-type": "application/json" },
        body: JSON.stringify({ name: "via-b", token_limit_per_5h: 100 }),
      });
      expect(made.status).toBe(201);
      b.secrets.push(((await made.json()) as { key: string }).key);
    });

    test("a key made on one instance, disabled on the other, is refused by both within a second", async () => {
      const k = (
        await a.admin<Json & { id: string; key: string }>("POST", "/admin/keys", {
          name: "pg-user",
          token_limit_per_5h: 10_000,
          model: "glm-4.6",
        })
      ).body;
      a.secrets.push(k.key);
      expect((await chat(a, k.key)).status).toBe(200);
      expect((await chat(b, k.key)).status).toBe(200);
      await b.admin("PATCH", `/admin/keys/${k.id}`, { disabled: true });
      expect((await chat(b, k.key)).status).toBe(403);
      // Requests a admits before NOTIFY reaches it are charged like any other.
      let admitted = 2;
      await waitFor("instance a to refuse the key", async () => {
        const status = (await chat(a, k.key)).status;
        if (status === 200) admitted++;
        return status === 403 ? true : undefined;
      });
      // Usage from both instances, read back through either, and the CLI, alike.
      const shown = await waitFor("usage in the database", async () => {
        const r = await b.admin<Json & { usage: Json }>("GET", `/admin/keys/${k.id}`);
        return r.body.total_requests === admitted ? r.body : undefined;
      });
      const tokens = 16 * admitted;
      expect(shown.usage).toMatchObject({ tokens_used_in_current_window: tokens });
      expect(typeof shown.usage.window_resets_at).toBe("string");
      const cli = await a.cli(["keys", "show", k.id, "--json"], { DATABASE_URL: db.url });
      expect(JSON.parse(cli.stdout)).toEqual((await a.admin("GET", `/admin/keys/${k.id}`)).body);

      const list = await a.admin<{ keys: Json[] }>(
        "GET",
        "/admin/keys?status=disabled&model=glm-4.6&search=PG-",
      );
      expect(list.body.keys.map((x) => x.id)).toEqual([k.id]);
      expect(list.body.keys[0]?.usage).toMatchObject({ tokens_used_in_current_window: tokens });
      const listCli = await a.cli([
        "keys",
        "list",
        "--status",
        "disabled",
        "--model",
        "glm-4.6",
        "--search",
        "PG-",
        "--json",
      ]);
      expect(JSON.parse(listCli.stdout)).toEqual(list.body);

      const q = "step=5m";
      const series = await a.admin<Json>("GET", `/admin/keys/${k.id}/usage?${q}`);
      expect(series.body).toMatchObject({
        total_tokens: tokens,
        total_requests: admitted,
        step_seconds: 300,
      });
      expect((series.body.points as unknown[]).length).toBe(288);
      const totals = await b.admin<Json & { by_key: Json[] }>("GET", `/admin/usage?${q}`);
      expect(totals.body).toMatchObject({
        total_tokens: tokens,
        keys_total: 2,
        keys_active: 1,
        keys_with_usage: 1,
      });
      expect(totals.body.by_key).toEqual([
        { id: k.id, name: "pg-user", prefix: k.prefix, tokens, requests: admitted },
      ]);
    });

    test("the secret sweep: every gateway's log is non-empty and holds no master, admin or client key", () => {
      expectNoSecretsInLogs();
    });
  },
);
