/**
 * Revoking keeps history (issue: after a key with 50 tokens was deleted,
 * `tollgate usage` said 80 instead of 130), and purge erases a revoked key,
 * on every backend: SQLite, the legacy JSON file and PostgreSQL.
 */

import { Database } from "bun:sqlite";
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import postgres from "postgres";
import {
  E2E_TIMEOUT_MS,
  expectNoSecretsInLogs,
  type GatewayProcess,
  HOOK_TIMEOUT_MS,
  mockHeaders,
  startGateway,
  waitFor,
} from "../harness/gateway.ts";
import { type MockUpstream, startMockUpstream } from "../harness/mock-upstream.ts";
import { type TestDatabase, testPostgres } from "../harness/postgres.ts";
import { describeNeedingPostgres, NEEDS_SERVER } from "../harness/require-postgres.ts";

setDefaultTimeout(E2E_TIMEOUT_MS);

const pg = await testPostgres();
type Json = Record<string, unknown>;

async function spend(gw: GatewayProcess, secret: string, tokens: number): Promise<void> {
  await gw
    .openai(secret, { maxRetries: 0 })
    .chat.completions.create(
      { model: "glm-4.7", messages: [{ role: "user", content: "hi" }] },
      { headers: mockHeaders({ promptTokens: tokens - 5, completionTokens: 5 }) },
    );
}

async function cliJson(gw: GatewayProcess, args: string[]): Promise<Json> {
  const r = await gw.cli([...args, "--json"]);
  if (r.code !== 0) throw new Error(`${args.join(" ")} failed (${r.code}): ${r.stderr}`);
  return JSON.parse(r.stdout) as Json;
}

interface Backend {
  env: Record<string, string>;
  cleanup: () => Promise<void>;
  /** Empties the audit table behind the gateway's back, as a lost database would. */
  wipeAudit?: () => Promise<void>;
}

function revokeSuite(
  name: string,
  env: () => Promise<Backend>,
  run: (label: string, fn: () => void) => void = describe,
): void {
  run(`revoking keeps history: ${name}`, () => {
    let mock: MockUpstream;
    let gw: GatewayProcess;
    let cleanup = async () => {};
    let backend: Backend | undefined;

    beforeAll(async () => {
      mock = await startMockUpstream({ record: false });
      const made = await env();
      backend = made;
      cleanup = made.cleanup;
      gw = await startGateway({
        mock,
        env: { ...made.env, ADMIN_API_KEY: "admin-revoke-0123456789abcdef" },
      });
    }, HOOK_TIMEOUT_MS);
    afterAll(async () => {
      await gw?.close();
      await mock?.stop();
      await cleanup();
    }, HOOK_TIMEOUT_MS);

    test("a revoked key's 50 tokens stay in the totals: usage says 130, not 80", async () => {
      const gone = await gw.createKey({ name: "leaver", limit: 10_000 });
      const stays = await gw.createKey({ name: "stayer", limit: 10_000 });
      await spend(gw, gone.key, 50);
      await spend(gw, stays.key, 80);
      await gw.statsWhen(gone.key, { tokens: 50 });
      await gw.statsWhen(stays.key, { tokens: 80 });

      const revoked = await cliJson(gw, ["keys", "delete", gone.id, "--yes"]);
      expect(revoked).toMatchObject({ id: gone.id, revoked: true, key: { status: "revoked" } });
      // Running gateways obey a CLI change within their key cache's second.
      const refused = await waitFor(
        "the revoked key to be refused",
        async () => {
          const status = await gw
            .openai(gone.key, { maxRetries: 0 })
            .models.list()
            .then(
              () => 200,
              (e: { status?: number }) => e.status,
            );
          return status === 401 ? status : undefined;
        },
        2000,
      );
      expect(refused).toBe(401);

      const usage = await cliJson(gw, ["usage", "--from", "1d"]);
      expect(usage.total_tokens).toBe(130);
      expect((usage.by_key as Json[]).map((k) => [k.name, k.tokens])).toEqual([
        ["stayer", 80],
        ["leaver", 50],
      ]);
      const api = await gw.admin<Json>("GET", "/admin/usage");
      expect(api.body.total_tokens).toBe(130);
      const history = await cliJson(gw, ["keys", "usage", gone.id, "--from", "1d"]);
      expect(history.total_tokens).toBe(50);

      // Hidden from listings by default, shown by the filter, with its totals.
      const listed = await cliJson(gw, ["keys", "list"]);
      expect((listed.keys as Json[]).map((k) => k.id)).toEqual([stays.id]);
      const onlyRevoked = await cliJson(gw, ["keys", "list", "--status", "revoked"]);
      expect(onlyRevoked.keys).toEqual([
        expect.objectContaining({ id: gone.id, status: "revoked", total_lifetime_tokens: 50 }),
      ]);
      const all = await gw.admin<{ keys: Json[] }>("GET", "/admin/keys?include_revoked=true");
      expect(all.body.keys.map((k) => k.id).sort()).toEqual([gone.id, stays.id].sort());

      // A revoked key can no longer be changed or given a new secret.
      const rotate = await gw.cli(["keys", "rotate", gone.id]);
      expect(rotate.code).toBe(1);
      expect(rotate.stderr).toContain("is revoked");
    });

    test("purge refuses a live key, asks first, then erases the revoked key and its usage", async () => {
      const live = await gw.createKey({ name: "live", limit: 1000 });
      const notRevoked = await gw.cli(["keys", "purge", live.id, "--yes"]);
      expect(notRevoked.code).toBe(1);
      expect(notRevoked.stderr).toContain("is not revoked");

      const k = await gw.createKey({ name: "forget me", limit: 1000 });
      await spend(gw, k.key, 20);
      await gw.statsWhen(k.key, { tokens: 20 });
      const before = (await cliJson(gw, ["usage", "--from", "1d"])).total_tokens as number;
      await cliJson(gw, ["keys", "delete", k.id, "--yes"]);
      const asked = await gw.cli(["keys", "purge", k.id]);
      expect(asked.code).toBe(1);
      expect(asked.stderr).toContain("--yes");
      expect((await cliJson(gw, ["keys", "show", k.id])).status).toBe("revoked");

      expect(await cliJson(gw, ["keys", "purge", k.id, "--yes"])).toEqual({
        id: k.id,
        purged: true,
      });
      expect((await gw.admin("GET", `/admin/keys/${k.id}`)).status).toBe(404);
      expect((await cliJson(gw, ["usage", "--from", "1d"])).total_tokens).toBe(before - 20);
      const log = await cliJson(gw, ["audit", "--key", k.id]);
      expect((log.entries as Json[]).map((e) => [e.action, e.key_name])).toEqual([
        ["key.purge", null],
        ["key.revoke", null],
        ["key.create", null],
      ]);
      expect(JSON.stringify(log)).not.toContain("forget me");
    });

    test.each([["native"], ["logical"]])(
      "a restore of a %s backup brings a lost audit log back, and records itself",
      async (format) => {
        if (!backend?.wipeAudit) return expect(name).toBe("legacy JSON file");
        const before = await cliJson(gw, ["audit", "--limit", "500"]);
        expect(before.total as number).toBeGreaterThan(3);
        const backup = await cliJson(gw, ["backup", "--format", format]);
        await backend.wipeAudit();
        expect((await cliJson(gw, ["audit"])).total).toBe(0);
        const restored = await gw.cli(["restore", String(backup.path), "--yes", "--force"]);
        expect(restored.stderr).not.toContain("error");
        expect(restored.code).toBe(0);
        const after = await cliJson(gw, ["audit", "--limit", "500"]);
        expect(after.total).toBe((before.total as number) + 1);
        expect((after.entries as Json[])[0]?.action).toBe("data.restore");
        expect((after.entries as Json[]).slice(1)).toEqual(before.entries as Json[]);
      },
    );

    test("no secret in the logs", () => {
      expect(expectNoSecretsInLogs()).toBeGreaterThan(0);
    });
  });
}

let sqliteDir = "";
revokeSuite("SQLite", async () => {
  sqliteDir = mkdtempSync(join(tmpdir(), "tollgate-revoke-sqlite-"));
  const path = join(sqliteDir, "tollgate.db");
  return {
    env: { DATABASE_PATH: path },
    cleanup: async () => rmSync(sqliteDir, { recursive: true, force: true }),
    wipeAudit: async () => {
      const db = new Database(path);
      db.run("PRAGMA busy_timeout = 5000");
      db.run("DELETE FROM audit_log");
      db.close();
    },
  };
});

revokeSuite("legacy JSON file", async () => {
  const dir = mkdtempSync(join(tmpdir(), "tollgate-revoke-file-"));
  return {
    env: { STORAGE_TYPE: "file", DATA_FILE: join(dir, "apikeys.json") },
    cleanup: async () => rmSync(dir, { recursive: true, force: true }),
  };
});

const runPg = (label: string, fn: () => void) =>
  describeNeedingPostgres(label, pg.shared ? undefined : NEEDS_SERVER, fn);
revokeSuite(
  "PostgreSQL",
  async () => {
    const db: TestDatabase = await pg.create();
    return {
      env: { DATABASE_URL: db.url },
      cleanup: () => db.drop(),
      wipeAudit: async () => {
        const sql = postgres(db.url, { max: 1, onnotice: () => {} });
        await sql`delete from audit_log`;
        await sql.end();
      },
    };
  },
  runPg,
);
