import {
  afterAll,
  afterEach,
  beforeAll,
  describe,
  expect,
  setDefaultTimeout,
  test,
} from "bun:test";
import { existsSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import OpenAI from "openai";
import {
  E2E_TIMEOUT_MS,
  expectNoSecretsInLogs,
  GatewayProcess,
  REPO_ROOT,
} from "../harness/gateway.ts";
import { legacyKeySecret, makeLegacyFile } from "../harness/legacy.ts";
import { type MockUpstream, startMockUpstream } from "../harness/mock-upstream.ts";
import { testPostgres } from "../harness/postgres.ts";
import { NEEDS_SERVER, testNeedingPostgres } from "../harness/require-postgres.ts";

setDefaultTimeout(E2E_TIMEOUT_MS);

// `tollgate migrate`, run as an operator would, against real SQLite files
// (and PostgreSQL), then the gateway serving the imported keys.

let mock: MockUpstream;
const open: GatewayProcess[] = [];

beforeAll(async () => {
  mock = await startMockUpstream();
});
afterEach(async () => {
  for (const g of open.splice(0)) await g.close();
});
afterAll(async () => {
  await mock.stop();
});

/** A gateway (not started) with its database created, as `migrate` wants one that exists. */
async function gateway(env: Record<string, string> = {}): Promise<GatewayProcess> {
  const g = new GatewayProcess({ mock, env });
  open.push(g);
  const created = await g.cli(["db", "migrate"]);
  if (created.code !== 0) throw new Error(`db migrate failed: ${created.stderr}`);
  return g;
}

function writeLegacy(g: GatewayProcess, content: unknown, name = "apikeys.json"): string {
  const file = join(g.dir, name);
  writeFileSync(file, typeof content === "string" ? content : JSON.stringify(content, null, 2));
  return file;
}

async function keyCount(g: GatewayProcess): Promise<number> {
  const r = await g.cli(["keys", "list", "--json", "--limit", "1"]);
  expect(r.code).toBe(0);
  return (JSON.parse(r.stdout) as { total: number }).total;
}

const backups = (g: GatewayProcess) =>
  existsSync(join(g.dir, "backups")) ? readdirSync(join(g.dir, "backups")) : [];

describe("tollgate migrate", () => {
  test("imports hundreds of keys, verified; holders keep their keys and their window usage", async () => {
    const g = await gateway();
    const now = Date.now();
    const legacy = makeLegacyFile({ keys: 300, now });
    const file = writeLegacy(g, legacy);
    const source = readFileSync(file, "utf8");

    const r = await g.cli(["migrate", "--file", file, "--yes"]);
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    expect(r.stdout).toContain("Imported 300 keys (0 skipped), every field verified");
    // Never a key in clear in the output.
    for (let i = 0; i < 300; i++) expect(r.stdout).not.toContain(legacyKeySecret(i));
    // The source is untouched and a timestamped copy sits beside it.
    expect(readFileSync(file, "utf8")).toBe(source);
    const copies = backups(g);
    expect(copies).toHaveLength(1);
    expect(copies[0]).toMatch(/^apikeys-\d{4}-\d{2}-\d{2}T[\d-]+Z\.json$/);
    expect(readFileSync(join(g.dir, "backups", copies[0] as string), "utf8")).toBe(source);

    await g.start();
    // A key with a rolling cache (even index) and one with only usage windows (odd).
    for (const i of [0, 1, 7, 298]) {
      const s = await g.stats(legacyKeySecret(i));
      const entry = legacy.keys[i] as Record<string, unknown>;
      expect(s.name).toBe(`user ${i}`);
      expect(s.total_lifetime_tokens).toBe(entry.total_lifetime_tokens as number);
      expect(s.current_usage.tokens_used_in_current_window).toBe(100 + i);
      expect(s.token_limit_per_5h).toBe(100_000 + i);
      expect(s.is_expired).toBe(i % 10 === 0);
      expect(s.model).toBe(i % 3 === 1 ? "glm-4.5" : "glm-4.7");
      expect(s.created_at).toBe(entry.created_at as string);
    }
    // And they work through the proxy, charged on top of the imported usage.
    const client = new OpenAI({
      baseURL: `${g.url}/v1`,
      apiKey: legacyKeySecret(1),
      maxRetries: 0,
    });
    await client.chat.completions.create({ model: "glm-4.7", messages: [] });
    const after = await g.statsWhen(legacyKeySecret(1), { tokens: 5_001 + 16, requests: 1 }, 2000);
    expect(after.current_usage.tokens_used_in_current_window).toBe(101 + 16);
    const expired = new OpenAI({
      baseURL: `${g.url}/v1`,
      apiKey: legacyKeySecret(0),
      maxRetries: 0,
    });
    // The SDK's promise is a thenable over an already-settled Promise: await it first.
    const refused = await expired.chat.completions.create({ model: "glm-4.7", messages: [] }).then(
      () => null,
      (err: unknown) => err,
    );
    expect(refused).toBeInstanceOf(OpenAI.PermissionDeniedError);
  });

  test("a re-run skips what is there: no duplicate keys, no usage counted twice", async () => {
    const g = await gateway();
    const file = writeLegacy(g, makeLegacyFile({ keys: 20, now: Date.now() }));
    expect((await g.cli(["migrate", "--file", file, "--yes"])).code).toBe(0);
    const before = (await g.cli(["keys", "show", "user 3", "--json"])).stdout;
    const again = await g.cli(["migrate", "--file", file, "--yes"]);
    expect(again.code).toBe(0);
    expect(again.stdout).toContain("0 to import, 20 already there (skipped)");
    expect(await keyCount(g)).toBe(20);
    expect((await g.cli(["keys", "show", "user 3", "--json"])).stdout).toBe(before);
    // The import is in the audit log once, with its counts; the re-run imported nothing.
    const audit = JSON.parse((await g.cli(["audit", "--json"])).stdout) as {
      entries: Array<{ action: string; actor: { kind: string }; changes: unknown }>;
    };
    expect(audit.entries.map((e) => e.action)).toEqual(["data.migrate"]);
    expect(audit.entries[0]).toMatchObject({
      actor: { kind: "cli" },
      changes: { imported: 20, skipped: 0 },
    });
  });

  test("legacy keys have no concurrency limit; one kept in a file written by the file backend comes along", async () => {
    const g = await gateway();
    const legacy = makeLegacyFile({ keys: 2, now: Date.now() });
    (legacy.keys[1] as Record<string, unknown>).max_concurrent = 5;
    const file = writeLegacy(g, legacy);
    expect((await g.cli(["migrate", "--file", file, "--yes"])).code).toBe(0);
    const show = async (name: string) =>
      JSON.parse((await g.cli(["keys", "show", name, "--json"])).stdout) as Record<string, unknown>;
    expect((await show("user 0")).max_concurrent).toBeNull();
    expect((await show("user 1")).max_concurrent).toBe(5);
  }, 20_000);

  test("--dry-run reports counts, prefixes and totals, and writes nothing", async () => {
    const g = await gateway();
    const file = writeLegacy(g, makeLegacyFile({ keys: 12, now: Date.now() }));
    const r = await g.cli(["migrate", "--file", file, "--dry-run", "--json"]);
    expect(r.code).toBe(0);
    const report = JSON.parse(r.stdout) as { keys: number; to_import: Array<{ prefix: string }> };
    expect(report.keys).toBe(12);
    expect(report.to_import).toHaveLength(12);
    expect(report.to_import[0]?.prefix).toBe("pk_leg…xxxx");
    expect(r.stdout).not.toContain(legacyKeySecret(0));
    expect(await keyCount(g)).toBe(0);
    expect(backups(g)).toEqual([]);
  });

  test("refuses without --yes when there is no terminal to ask on (exit 3), writing nothing", async () => {
    const g = await gateway();
    const file = writeLegacy(g, makeLegacyFile({ keys: 3, now: Date.now() }));
    const r = await g.cli(["migrate", "--file", file]);
    expect(r.code).toBe(3);
    expect(r.stderr).toContain("--yes");
    expect(await keyCount(g)).toBe(0);
    expect(backups(g)).toEqual([]);
  });

  const invalid: Array<[string, (f: ReturnType<typeof makeLegacyFile>) => unknown, RegExp]> = [
    ["corrupt JSON", () => '{"keys": [ {"key": "pk_abc", "name": ', /not valid JSON/],
    [
      "wrong types",
      (f) => {
        (f.keys[4] as Record<string, unknown>).token_limit_per_5h = "lots";
        (f.keys[6] as Record<string, unknown>).expiry_date = "someday";
        return f;
      },
      /key #5 \("user 4"\): token_limit_per_5h: .*\n.*key #7 \("user 6"\): expiry_date: not a valid date/,
    ],
    [
      "a duplicate key",
      (f) => {
        (f.keys[5] as Record<string, unknown>).key = legacyKeySecret(2);
        return f;
      },
      /key #6 \("user 5"\): the same key as key #3 \("user 2"\)/,
    ],
    ["no keys array", () => ({ users: [] }), /keys: /],
  ];
  for (const [what, damage, message] of invalid) {
    test(`an invalid file (${what}) exits 2, names the key without showing it, and writes nothing`, async () => {
      const g = await gateway();
      const file = writeLegacy(g, damage(makeLegacyFile({ keys: 8, now: Date.now() })));
      const r = await g.cli(["migrate", "--file", file, "--yes"]);
      expect(r.code).toBe(2);
      expect(r.stderr).toMatch(message);
      expect(r.stderr).toContain("nothing was written");
      expect(r.stderr).not.toContain("at ");
      for (let i = 0; i < 8; i++) expect(r.stderr + r.stdout).not.toContain(legacyKeySecret(i));
      expect(await keyCount(g)).toBe(0);
      expect(backups(g)).toEqual([]);
    });
  }

  test("an unwritable backup folder stops the import before anything is written", async () => {
    const g = await gateway();
    const file = writeLegacy(g, makeLegacyFile({ keys: 5, now: Date.now() }));
    // A plain file where the backups folder should be: it cannot be created
    // or written into, even by root.
    writeFileSync(join(g.dir, "backups"), "not a folder");
    const r = await g.cli(["migrate", "--file", file, "--yes"]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain("cannot write the backup");
    expect(r.stderr).toContain("nothing was imported");
    expect(await keyCount(g)).toBe(0);
  });

  test("an import killed half-way leaves the database as it was", async () => {
    const g = await gateway();
    const file = writeLegacy(g, makeLegacyFile({ keys: 5_000, now: Date.now() }));
    const proc = Bun.spawn(
      [process.execPath, "src/cli/main.ts", "migrate", "--file", file, "--yes"],
      {
        cwd: REPO_ROOT,
        env: { ...process.env, DATABASE_PATH: g.dbPath },
        stdout: "pipe",
        stderr: "pipe",
      },
    );
    // Kill it once it reports progress: inside the import transaction.
    const reader = proc.stderr.getReader();
    let said = "";
    while (!said.includes("importing")) {
      const { done, value } = await reader.read();
      if (done) break;
      said += new TextDecoder().decode(value);
    }
    expect(said).toContain("importing");
    proc.kill("SIGKILL");
    await proc.exited;
    expect(await keyCount(g)).toBe(0);
    // And a clean run afterwards imports everything.
    const r = await g.cli(["migrate", "--file", file, "--yes"]);
    expect(r.code).toBe(0);
    expect(await keyCount(g)).toBe(5_000);
  }, 60_000);

  test("the server points at the migrate command when the database is empty and a legacy file exists", async () => {
    const g = await gateway();
    writeLegacy(g, makeLegacyFile({ keys: 2, now: Date.now() }));
    const withFile = new GatewayProcess({
      mock,
      env: { DATA_FILE: join(g.dir, "apikeys.json"), DATABASE_PATH: g.dbPath },
    });
    open.push(withFile);
    await withFile.start();
    const hint = withFile.logLines().find((l) => String(l.msg).includes("tollgate migrate --file"));
    expect(hint?.level).toBe("warn");
    expect(String(hint?.msg)).toContain(
      `npx tollgate migrate --file ${join(g.dir, "apikeys.json")}`,
    );
  });
});

const pg = await testPostgres();

describe(`tollgate migrate into PostgreSQL (${pg.kind})`, () => {
  testNeedingPostgres(
    "imports into PostgreSQL with the same verification",
    pg.shared ? undefined : NEEDS_SERVER,
    async () => {
      const db = await pg.create();
      try {
        const g = await gateway({ DATABASE_URL: db.url });
        const file = writeLegacy(g, makeLegacyFile({ keys: 150, now: Date.now() }));
        const r = await g.cli(["migrate", "--file", file, "--yes"]);
        expect(r.stderr).toBe("");
        expect(r.code).toBe(0);
        expect(r.stdout).toContain("Imported 150 keys");
        await g.start();
        const s = await g.stats(legacyKeySecret(7));
        expect(s.total_lifetime_tokens).toBe(2 ** 33 + 7);
        expect(s.current_usage.tokens_used_in_current_window).toBe(107);
        await g.close();
      } finally {
        await db.drop();
      }
    },
  );
});

test("the secret sweep: every gateway's log is non-empty and holds no master, admin or client key", () => {
  expectNoSecretsInLogs();
});
