/**
 * The audit log end to end: every key change from the CLI and from the admin
 * API appears once, with its actor, and never a secret or hash; `tollgate
 * audit` and GET /admin/audit filter and page it; it survives backup and
 * restore.
 */

import { Database } from "bun:sqlite";
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { existsSync, readFileSync } from "node:fs";
import { hostname } from "node:os";
import { resolve } from "node:path";
import { hashKey } from "../../src/keys/secret.ts";
import {
  E2E_TIMEOUT_MS,
  expectNoSecretsInLogs,
  GatewayProcess,
  HOOK_TIMEOUT_MS,
  startGateway,
} from "../harness/gateway.ts";
import { type MockUpstream, startMockUpstream } from "../harness/mock-upstream.ts";

setDefaultTimeout(E2E_TIMEOUT_MS);

type Json = Record<string, unknown>;
type Entry = {
  action: string;
  actor: { kind: string; name: string };
  key_id: string | null;
  key_name: string | null;
  changes: Record<string, unknown> | null;
};
const ADMIN = "admin-audit-0123456789abcdef0123";

let mock: MockUpstream;
let gw: GatewayProcess;

beforeAll(async () => {
  mock = await startMockUpstream({ record: false });
  gw = await startGateway({ mock, env: { ADMIN_API_KEY: ADMIN } });
}, HOOK_TIMEOUT_MS);
afterAll(async () => {
  await gw?.close();
  await mock?.stop();
}, HOOK_TIMEOUT_MS);

async function cli(args: string[]): Promise<Json> {
  const r = await gw.cli([...args, "--json"]);
  if (r.code !== 0) throw new Error(`${args.join(" ")}: ${r.stderr}`);
  return JSON.parse(r.stdout) as Json;
}

async function auditOf(keyId: string): Promise<Entry[]> {
  return ((await cli(["audit", "--key", keyId])).entries as Entry[]).reverse();
}

/** Every secret handed out, and the hashes of them: none may be in the log or the database. */
function expectNoSecretsIn(text: string, what: string): void {
  for (const secret of gw.secrets) {
    if (text.includes(secret)) throw new Error(`a secret appears in ${what}`);
    if (text.includes(hashKey(secret))) throw new Error(`a key hash appears in ${what}`);
  }
}

describe("audit log", () => {
  test("every change from the CLI appears once, with the system user and host", async () => {
    const k = await gw.createKey({ name: "audited", limit: 1000 });
    await cli(["keys", "update", k.id, "--limit", "2000", "--name", "audited-2"]);
    await cli(["keys", "update", k.id, "--disable"]);
    await cli(["keys", "update", k.id, "--enable"]);
    const rotated = await cli(["keys", "rotate", k.id]);
    gw.secrets.push(String(rotated.key));
    await cli(["keys", "delete", k.id, "--yes"]);
    // Revoking again changes nothing and records nothing.
    await cli(["keys", "delete", k.id, "--yes"]);

    const log = await auditOf(k.id);
    expect(log.map((e) => e.action)).toEqual([
      "key.create",
      "key.update",
      "key.disable",
      "key.enable",
      "key.rotate",
      "key.revoke",
    ]);
    for (const e of log) {
      expect(e.actor.kind).toBe("cli");
      expect(e.actor.name).toEndWith(`@${hostname()}`);
    }
    expect(log[1]?.changes).toEqual({
      name: { before: "audited", after: "audited-2" },
      token_limit_per_5h: { before: 1000, after: 2000 },
    });
    expect(log[4]?.changes).toEqual({
      prefix: { before: k.prefix, after: String(rotated.prefix) },
    });

    await cli(["keys", "purge", k.id, "--yes"]);
    const after = await auditOf(k.id);
    expect(after.map((e) => e.action).at(-1)).toBe("key.purge");
    expect(after.every((e) => e.key_name === null)).toBe(true);
    expect(JSON.stringify(after)).not.toContain("audited");
  });

  test("every change from the admin API appears once, with the client's address", async () => {
    const made = await gw.admin<Json>("POST", "/admin/keys", {
      name: "api-audited",
      token_limit_per_5h: 500,
    });
    const id = String(made.body.id);
    await gw.admin("PATCH", `/admin/keys/${id}`, { max_concurrent: 2 });
    await gw.admin("PATCH", `/admin/keys/${id}`, { disabled: true });
    await gw.admin("POST", `/admin/keys/${id}/rotate`);
    await gw.admin("DELETE", `/admin/keys/${id}`);
    await gw.admin("POST", `/admin/keys/${id}/purge`);

    const page = await gw.admin<{ total: number; entries: Entry[] }>(
      "GET",
      `/admin/audit?key=${id}`,
    );
    expect(page.status).toBe(200);
    expect(page.body.total).toBe(6);
    expect(page.body.entries.map((e) => e.action).reverse()).toEqual([
      "key.create",
      "key.update",
      "key.disable",
      "key.rotate",
      "key.revoke",
      "key.purge",
    ]);
    for (const e of page.body.entries) expect(e.actor).toEqual({ kind: "api", name: "127.0.0.1" });

    // Paging and the time filter.
    const second = await gw.admin<{ entries: Entry[] }>(
      "GET",
      `/admin/audit?key=${id}&limit=2&offset=2`,
    );
    expect(second.body.entries.map((e) => e.action)).toEqual(["key.rotate", "key.disable"]);
    const future = await gw.admin<{ total: number }>("GET", "/admin/audit?since=2099-01-01");
    expect(future.body.total).toBe(0);
    const bad = await gw.admin("GET", "/admin/audit?limit=0");
    expect(bad.status).toBe(400);
    const recent = await cli(["audit", "--since", "7d"]);
    expect(recent.total as number).toBeGreaterThanOrEqual(12);
    const spec = await gw.fetch("/admin/openapi.json");
    expect(Object.keys(((await spec.json()) as { paths: Json }).paths)).toContain("/admin/audit");
  });

  test("no secret or hash in the log, its outputs or the database's audit table", async () => {
    const all = await gw.admin("GET", "/admin/audit?limit=500");
    expectNoSecretsIn(all.text, "GET /admin/audit");
    const printed = await gw.cli(["audit", "--limit", "500"]);
    expect(printed.code).toBe(0);
    expect(printed.stdout).toContain("key.revoke");
    expectNoSecretsIn(printed.stdout, "tollgate audit");
    const db = new Database(gw.dbPath, { readonly: true });
    const rows = JSON.stringify(db.query("select * from audit_log").all());
    db.close();
    expectNoSecretsIn(rows, "the audit_log table");
    for (const file of [gw.dbPath, `${gw.dbPath}-wal`]) {
      if (!existsSync(file)) continue;
      const bytes = readFileSync(file).toString("latin1");
      for (const secret of gw.secrets) expect(bytes.includes(secret)).toBe(false);
    }
    expect(expectNoSecretsInLogs()).toBeGreaterThan(0);
  });

  test.each([["native"], ["logical"]])(
    "the log survives a %s backup and restore into an empty database",
    async (format) => {
      const before = (await cli(["audit", "--limit", "500"])) as {
        total: number;
        entries: Entry[];
      };
      const backup = await cli(["backup", "--format", format]);
      const fresh = new GatewayProcess({ env: { ADMIN_API_KEY: ADMIN } });
      try {
        const migrated = await fresh.cli(["db", "migrate"]);
        expect(migrated.code).toBe(0);
        // The path as printed: relative to the folder the backup was made in.
        const file = resolve(gw.dir, String(backup.path));
        const restored = await fresh.cli(["restore", file, "--yes"]);
        expect(restored.stderr).not.toContain("error");
        expect(restored.code).toBe(0);
        const r = await fresh.cli(["audit", "--limit", "500", "--json"]);
        const after = JSON.parse(r.stdout) as { total: number; entries: Entry[] };
        expect(after.total).toBe(before.total + 1);
        expect(after.entries[0]?.action).toBe("data.restore");
        expect(after.entries.slice(1)).toEqual(before.entries);
      } finally {
        await fresh.close();
      }
    },
  );
});
