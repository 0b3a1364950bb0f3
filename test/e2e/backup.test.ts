import {
  afterAll,
  afterEach,
  beforeAll,
  describe,
  expect,
  setDefaultTimeout,
  test,
} from "bun:test";
import { copyFileSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createKey } from "../../src/keys/service.ts";
import type { Manifest } from "../../src/ops/backup/manifest.ts";
import { writeManifest } from "../../src/ops/backup/manifest.ts";
import { openPostgresStorage } from "../../src/storage/postgres/index.ts";
import { openSqliteStorage } from "../../src/storage/sqlite/index.ts";
import { damage } from "../harness/backup-fixtures.ts";
import {
  type CliResult,
  E2E_TIMEOUT_MS,
  expectNoSecretsInLogs,
  GatewayProcess,
  waitFor,
} from "../harness/gateway.ts";
import { type MockUpstream, startMockUpstream } from "../harness/mock-upstream.ts";
import { type TestPostgres, testPostgres } from "../harness/postgres.ts";
import { describeNeedingPostgres, NEEDS_SERVER } from "../harness/require-postgres.ts";

// `tollgate backup`, `backup verify`, `backups list` and `restore`, run as an
// operator would, next to a real gateway process serving traffic; and the
// gateway's own scheduled backups.

setDefaultTimeout(E2E_TIMEOUT_MS);

let mock: MockUpstream;
const open: GatewayProcess[] = [];

beforeAll(async () => {
  mock = await startMockUpstream({ record: false });
});
afterEach(async () => {
  for (const g of open.splice(0)) await close(g);
});
afterAll(async () => {
  await mock.stop();
});

const backupDirs = new Map<GatewayProcess, string>();

/** A gateway (not started) whose BACKUP_DIR is a fresh folder of its own, for it and its CLI. */
function gateway(env: Record<string, string> = {}): GatewayProcess {
  const dir = mkdtempSync(join(tmpdir(), "tollgate-e2e-backups-"));
  const g = new GatewayProcess({ mock, env: { BACKUP_DIR: dir, ...env } });
  backupDirs.set(g, dir);
  open.push(g);
  return g;
}

async function close(g: GatewayProcess): Promise<void> {
  await g.close();
  rmSync(backupsOf(g), { recursive: true, force: true });
}

const backupsOf = (g: GatewayProcess) => backupDirs.get(g) as string;

/** A user error: one line on stderr, no stack trace. */
function expectOneLine(r: CliResult, pattern: RegExp): void {
  expect(r.stderr).toMatch(pattern);
  expect(r.stderr).not.toMatch(/\n\s+at /);
}

function chat(g: GatewayProcess, key: string): Promise<number> {
  return g
    .fetch("/v1/chat/completions", {
      method: "POST",
      headers: { authorization: `Bearer ${key}`, "content-type": "application/json" },
      body: JSON.stringify({ model: "glm-4.7", messages: [{ role: "user", content: "hi" }] }),
    })
    .then(async (r) => {
      await r.arrayBuffer();
      return r.status;
    });
}

/** Requests with the given keys, four at a time, until stopped. */
function traffic(g: GatewayProcess, keys: string[]): { stop(): Promise<number> } {
  let running = true;
  let sent = 0;
  const workers = Array.from({ length: 4 }, async (_, w) => {
    while (running) {
      await chat(g, keys[(sent + w) % keys.length] as string);
      sent++;
    }
  });
  return {
    async stop() {
      running = false;
      await Promise.all(workers);
      return sent;
    },
  };
}

async function backupJson(
  g: GatewayProcess,
  args: string[] = [],
): Promise<{ path: string; counts: Manifest["counts"] }> {
  const r = await g.cli(["backup", "--json", ...args]);
  expect(r.stderr).toBe("");
  expect(r.code).toBe(0);
  return JSON.parse(r.stdout);
}

/** A key's lifetime totals as the database holds them (read directly: faster than the CLI). */
async function totals(
  where: GatewayProcess | string,
  id: string,
): Promise<{ tokens: number; requests: number } | null> {
  const storage =
    typeof where === "string"
      ? openPostgresStorage({ url: where, poolMax: 1 })
      : openSqliteStorage(where.dbPath);
  try {
    const k = await storage.getKeyById(id);
    return k ? { tokens: k.totalTokens, requests: k.totalRequests } : null;
  } finally {
    await storage.close();
  }
}

describe("backup and restore of a SQLite gateway", () => {
  test("a backup under load verifies; restore waits for the gateway to stop; restored data is served; the pre-restore backup undoes it", async () => {
    const g = gateway();
    await g.start();
    const a = await g.createKey({ name: "alice", limit: "10M" });
    const b = await g.createKey({ name: "bob", limit: "10M" });

    // 1. Taken while the gateway serves: consistent, and it verifies.
    const load = traffic(g, [a.key, b.key]);
    await Bun.sleep(200);
    const busy = await g.cli(["backup"]);
    const sent = await load.stop();
    expect(busy.code).toBe(0);
    expect(sent).toBeGreaterThan(0);
    const [, busyPath, busySize] =
      /^Backup written: (\S+) \(([\d.]+ \w+)\)$/m.exec(busy.stdout) ?? [];
    expect(busySize).toBeDefined();
    const verified = await g.cli(["backup", "verify", busyPath as string]);
    expect(verified.code).toBe(0);
    expect(verified.stdout).toContain("OK: ");
    expect(verified.stdout).toContain("SQLite integrity_check");
    expect(verified.stdout).toContain("restorable into the configured SQLite database");

    // 2. Restore refuses while the gateway serves the database, and changes nothing.
    const refused = await g.cli(["restore", busyPath as string, "--json"]);
    expect(refused.code).toBe(1);
    expectOneLine(
      refused,
      /^error: a gateway \(process \d+\) is serving this database; stop it first/,
    );

    // 3. A quiet backup, the gateway idle with every charge in the database.
    const flushed = async (id: string, key: string) => {
      const served = await g.stats(key);
      const want = { tokens: served.total_lifetime_tokens, requests: served.total_requests };
      return waitFor(`${id} flushed`, async () => {
        const t = await totals(g, id);
        return t && t.tokens === want.tokens && t.requests === want.requests ? t : undefined;
      });
    };
    const before = { a: await flushed(a.id, a.key), b: await flushed(b.id, b.key) };
    const quiet = await backupJson(g);
    expect(quiet.counts.keys).toBe(2);

    // 4. Life goes on: more usage, a new key, a revoked key.
    for (let i = 0; i < 5; i++) expect(await chat(g, a.key)).toBe(200);
    const c = await g.createKey({ name: "carol", limit: "1M" });
    expect((await g.cli(["keys", "delete", b.id, "--yes"])).code).toBe(0);
    expect(await g.stop()).toBe(0);
    const later = await totals(g, a.id);
    expect(later?.tokens).toBe(before.a.tokens + 5 * 16);

    // 5. Restore: asks first (refuses without a terminal), then with --yes.
    const unconfirmed = await g.cli(["restore", quiet.path]);
    expect(unconfirmed.code).toBe(3);
    expectOneLine(unconfirmed, /not on a terminal.*--yes/);
    const restored = await g.cli(["restore", quiet.path, "--yes"]);
    expect(restored.code).toBe(0);
    const [, pre] = /^Backup of the data replaced: (\S+)$/m.exec(restored.stdout) ?? [];
    expect(pre).toContain("-pre-restore.db.gz");
    expect(restored.stdout).toContain(`To undo: npx tollgate restore ${pre} --yes`);
    expect(restored.stdout).toContain("Restored 2 keys");

    // 6. A started gateway serves exactly the backed-up keys and usage.
    await g.start();
    const sa = await g.stats(a.key);
    expect({ tokens: sa.total_lifetime_tokens, requests: sa.total_requests }).toEqual(before.a);
    const sb = await g.stats(b.key);
    expect({ tokens: sb.total_lifetime_tokens, requests: sb.total_requests }).toEqual(before.b);
    expect(
      (await g.fetch("/stats", { headers: { authorization: `Bearer ${c.key}` } })).status,
    ).toBe(401);
    expect(await g.stop()).toBe(0);

    // 7. Restoring the pre-restore backup undoes the restore.
    const undone = await g.cli(["restore", pre as string, "--yes"]);
    expect(undone.code).toBe(0);
    expect(await totals(g, c.id)).not.toBeNull();
    // Revoked, b is still there with its totals.
    expect(await totals(g, b.id)).toEqual(before.b);
    expect(await totals(g, a.id)).toEqual(later);

    // 8. Listed, newest first.
    const list = await g.cli(["backups", "list", "--json"]);
    const listed = JSON.parse(list.stdout) as {
      backups: Array<{ origin: string; status: string }>;
    };
    expect(listed.backups.map((x) => x.origin)).toEqual([
      "pre-restore",
      "pre-restore",
      "manual",
      "manual",
    ]);
    expect(listed.backups.every((x) => x.status === "ok")).toBe(true);
  });

  test("damaged backups are refused by verify and restore with one clear line; the data stays", async () => {
    const g = gateway();
    // Keys made in-process: this test is about the backup commands.
    const storage = openSqliteStorage(g.dbPath);
    await storage.migrate();
    await createKey(storage, { name: "alice", tokenLimit: 1000 }, Date.now());
    const good = await backupJson(g);
    await createKey(storage, { name: "bob", tokenLimit: 1000 }, Date.now());
    const cases: Array<[string, (path: string) => void, RegExp]> = [
      ["truncated", (p) => damage(p, "truncated"), /is damaged: the backup file is cut short/],
      ["flipped", (p) => damage(p, "flipped"), /is damaged: checksum mismatch/],
      ["empty", (p) => damage(p, "empty"), /is damaged: the backup file is empty/],
      [
        "no manifest",
        (p) => rmSync(`${p}.manifest.json`),
        /is damaged: its manifest .* is missing/,
      ],
      [
        "unknown format",
        (p) => {
          // Well formed, its own checksum right, but a format nobody knows.
          const m = JSON.parse(readFileSync(`${p}.manifest.json`, "utf8")) as Manifest;
          writeManifest(`${p}.manifest.json`, { ...m, format: "tar" as Manifest["format"] });
        },
        /unknown backup format "tar"/,
      ],
    ];
    for (const [what, harm, message] of cases) {
      const copy = join(g.dir, `${what.replace(" ", "-")}.db.gz`);
      copyFileSync(good.path, copy);
      copyFileSync(`${good.path}.manifest.json`, `${copy}.manifest.json`);
      harm(copy);
      const v = await g.cli(["backup", "verify", copy]);
      expect(v.code).toBe(2);
      expectOneLine(v, message);
      // Restore refuses each of them too (src/ops/backup tests every kind); two here for the CLI.
      if (what === "truncated" || what === "unknown format") {
        const r = await g.cli(["restore", copy, "--yes"]);
        expect(r.code).toBe(2);
        expectOneLine(r, message);
        expect(r.stderr).toContain("nothing was changed");
      }
    }
    expect(await storage.countKeys()).toBe(2);
    await storage.close();
    // Nothing was even backed up: every refusal came first.
    expect(readdirSync(backupsOf(g)).some((f) => f.includes("pre-restore"))).toBe(false);
    const missing = await g.cli(["backup", "verify", join(g.dir, "nope.db.gz")]);
    expect(missing.code).toBe(1);
    expectOneLine(missing, /^error: \S+nope\.db\.gz does not exist\n$/);
  });

  test("the gateway backs up on its schedule and keeps the newest BACKUP_RETAIN", async () => {
    const g = gateway({
      BACKUP_ENABLED: "true",
      BACKUP_SCHEDULE: "* * * * * *",
      BACKUP_RETAIN: "1",
    });
    await g.createKey({ name: "alice", limit: 1000 });
    const manual = await backupJson(g);
    await g.start();
    const written = () => g.logLines().filter((l) => l.msg === "scheduled backup written");
    const deadline = performance.now() + 15_000;
    while (written().length < 2 && performance.now() < deadline) await Bun.sleep(50);
    expect(await g.stop()).toBe(0);
    expect(written().length).toBeGreaterThanOrEqual(2);
    expect(written()[0]?.backup).toMatchObject({ status: "ok", keys: 1 });
    const list = JSON.parse((await g.cli(["backups", "list", "--json"])).stdout) as {
      backups: Array<{ origin: string; path: string }>;
    };
    expect(list.backups.filter((b) => b.origin === "scheduled")).toHaveLength(1);
    expect(list.backups.find((b) => b.origin === "manual")?.path).toBe(manual.path);
    expect(existsSync(manual.path)).toBe(true);
  });

  test("an invalid BACKUP_SCHEDULE stops start-up with one line naming it", async () => {
    const g = gateway();
    const r = await g.cli(["serve"], { BACKUP_SCHEDULE: "61 * * * *", PORT: "0" });
    expect(r.code).toBe(1);
    expect(r.stderr.trim()).toMatch(
      /^error: invalid configuration: BACKUP_SCHEDULE: not a valid cron expression \("61 \* \* \* \*"\)[^\n]*$/,
    );
  });
});

// Without a server nothing here can run: do not start PGlite just to find that out.
const pg = process.env.TEST_DATABASE_URL ? await testPostgres() : undefined;

describeNeedingPostgres(
  "backup and restore of a PostgreSQL gateway",
  pg?.shared ? undefined : NEEDS_SERVER,
  () => {
    test("pg_dump under load verifies; restore refuses while gateways are connected; restored data is served; SQLite refuses the archive", async () => {
      const db = await (pg as TestPostgres).create();
      try {
        const g = gateway({ DATABASE_URL: db.url });
        await g.start();
        const a = await g.createKey({ name: "alice", limit: "10M" });
        const load = traffic(g, [a.key]);
        await Bun.sleep(200);
        const busy = await backupJson(g);
        await load.stop();
        expect(busy.path).toEndWith(".dump");
        expect((await g.cli(["backup", "verify", busy.path])).code).toBe(0);

        const refused = await g.cli(["restore", busy.path]);
        expect(refused.code).toBe(1);
        expectOneLine(refused, /other Tollgate connection\(s\) to this database are open/);

        // Quiet backups, every charge flushed, then more usage.
        const served = await g.stats(a.key);
        const before = await waitFor("usage flushed", async () => {
          const t = await totals(db.url, a.id);
          return t?.tokens === served.total_lifetime_tokens ? t : undefined;
        });
        const quiet = await backupJson(g);
        for (let i = 0; i < 3; i++) expect(await chat(g, a.key)).toBe(200);
        expect(await g.stop()).toBe(0);
        expect((await totals(db.url, a.id))?.tokens).toBe(before.tokens + 3 * 16);

        const restored = await g.cli(["restore", quiet.path, "--yes"]);
        expect(restored.code).toBe(0);
        expect(restored.stdout).toMatch(/Backup of the data replaced: \S+-pre-restore\.dump/);
        await g.start();
        const s = await g.stats(a.key);
        expect({ tokens: s.total_lifetime_tokens, requests: s.total_requests }).toEqual(before);
        expect(await g.stop()).toBe(0);

        // The other kind: a pg_dump archive is refused by SQLite (a logical
        // export would go in: src/ops/backup/postgres.test.ts).
        const sqlite = gateway();
        expect((await sqlite.cli(["db", "migrate"])).code).toBe(0);
        const wrong = await sqlite.cli(["restore", quiet.path, "--yes"]);
        expect(wrong.code).toBe(2);
        expectOneLine(
          wrong,
          /this is a PostgreSQL backup \(pg_dump format\) and the configured database is SQLite; only logical backups move between kinds/,
        );
      } finally {
        for (const g of open.splice(0)) await close(g);
        await db.drop();
      }
    });
  },
);

test("the secret sweep: every gateway's log is non-empty and holds no master, admin or client key", () => {
  expectNoSecretsInLogs();
});
