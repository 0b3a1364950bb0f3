/**
 * The CLI as an operator meets it: spawned as a process, from a folder of its
 * own, with nothing but its environment and arguments.
 */
import { afterAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  type CliResult,
  E2E_TIMEOUT_MS,
  GatewayProcess,
  REPO_ROOT,
  runCommand,
} from "../harness/gateway.ts";

// Explicit, for two busy cores: the runner's 5 s default measures the machine.
setDefaultTimeout(E2E_TIMEOUT_MS);

const MAIN = join(REPO_ROOT, "src", "cli", "main.ts");
const folders: string[] = [];
afterAll(() => {
  for (const dir of folders) rmSync(dir, { recursive: true, force: true });
});

function folder(): string {
  const dir = mkdtempSync(join(tmpdir(), "tollgate-cli-"));
  folders.push(dir);
  return dir;
}

/** `tollgate <args>` run in `cwd` with only the given environment (plus PATH and HOME). */
function tollgate(args: string[], o: { cwd: string; env?: Record<string, string> }) {
  return run([process.execPath, MAIN, ...args], o);
}

/** `cmd` run as `tollgate` runs the CLI, its output gathered. */
function run(cmd: string[], o: { cwd: string; env?: Record<string, string> }): Promise<CliResult> {
  return runCommand(cmd, {
    cwd: o.cwd,
    env: { PATH: process.env.PATH ?? "", HOME: process.env.HOME ?? "", ...o.env },
  });
}

/** One line on stderr, no stack trace. */
function oneLine(r: CliResult): string {
  expect(r.stderr).not.toMatch(/\n\s+at /);
  const lines = r.stderr.trim().split("\n");
  expect(lines).toHaveLength(1);
  return lines[0] ?? "";
}

describe("the CLI finds the gateway's database or says it did not", () => {
  test("data commands in a folder without a database refuse, name the path and create nothing", async () => {
    const cwd = folder();
    const commands = [
      ["keys", "create", "--name", "alice", "--limit", "1000"],
      ["keys", "list"],
      ["usage"],
      ["backup"],
      ["restore", join(cwd, "x.db.gz"), "--yes"],
      ["db", "copy", "--to", join(cwd, "copy.db")],
    ];
    for (const args of commands) {
      const r = await tollgate(args, { cwd });
      expect(r.code, args.join(" ")).toBe(1);
      const line = oneLine(r);
      expect(line).toStartWith(`error: no database at ${join(cwd, "data", "tollgate.db")}`);
      expect(line).toContain("DATABASE_URL");
      expect(line).toContain("--env-file");
    }
    expect(readdirSync(cwd)).toEqual([]);
  }, 60_000);

  test("--env-file points a command at the gateway's settings; db migrate creates the database", async () => {
    const site = folder();
    const elsewhere = folder();
    const dbPath = join(site, "state", "gateway.db");
    const envFile = join(site, "gateway.env");
    writeFileSync(envFile, `DATABASE_PATH=${dbPath}\n`);

    const created = await tollgate(["--env-file", envFile, "db", "migrate"], { cwd: elsewhere });
    expect(created.stderr).toBe("");
    expect(created.code).toBe(0);
    expect(existsSync(dbPath)).toBe(true);

    // The option works after the command name too.
    const key = await tollgate(
      ["keys", "create", "--name", "alice", "--limit", "1000", "--json", "--env-file", envFile],
      { cwd: elsewhere },
    );
    expect(key.code).toBe(0);
    const listed = await tollgate(["keys", "list", "--json"], {
      cwd: elsewhere,
      env: { DATABASE_PATH: dbPath },
    });
    expect((JSON.parse(listed.stdout) as { total: number }).total).toBe(1);
    expect(readdirSync(elsewhere)).toEqual([]);

    const missing = await tollgate(["--env-file", "nope.env", "keys", "list"], { cwd: elsewhere });
    expect(missing.code).toBe(1);
    expect(oneLine(missing)).toBe(
      `error: --env-file: cannot read ${join(elsewhere, "nope.env")}: no such file`,
    );
  }, 30_000);

  test("--env-file replaces ./.env, but not what the environment itself sets", async () => {
    const cwd = folder();
    mkdirSync(join(cwd, "a"));
    mkdirSync(join(cwd, "b"));
    writeFileSync(join(cwd, ".env"), `DATABASE_PATH=${join(cwd, "a", "t.db")}\n`);
    writeFileSync(join(cwd, "b.env"), `DATABASE_PATH=${join(cwd, "b", "t.db")}\n`);
    expect((await tollgate(["--env-file", "b.env", "db", "migrate"], { cwd })).code).toBe(0);
    expect(readdirSync(join(cwd, "a"))).toEqual([]);
    expect(existsSync(join(cwd, "b", "t.db"))).toBe(true);
  }, 30_000);
});

describe("permanent database errors fail at once", () => {
  test("an unsupported DATABASE_URL scheme is named as such, not as a STORAGE_TYPE problem", async () => {
    const r = await tollgate(["keys", "list"], {
      cwd: folder(),
      env: { DATABASE_URL: "mysql://root:pw@127.0.0.1/tollgate" },
    });
    expect(r.code).toBe(1);
    const line = oneLine(r);
    expect(line).toStartWith(
      "error: invalid configuration: DATABASE_URL: the scheme mysql:// is not supported",
    );
    expect(line).not.toContain("STORAGE_TYPE");
    expect(line).not.toContain("pw");
  });

  const server = process.env.TEST_DATABASE_URL;
  test.skipIf(!server)(
    "a PostgreSQL database that does not exist is not retried",
    async () => {
      const url = new URL(server as string);
      url.pathname = `/tollgate_missing_${Date.now()}`;
      const started = performance.now();
      // The defaults: 10 attempts, which used to take about 27 s.
      const r = await tollgate(["keys", "list"], {
        cwd: folder(),
        env: { DATABASE_URL: url.href },
      });
      expect(performance.now() - started).toBeLessThan(5000);
      expect(r.code).toBe(1);
      const line = oneLine(r);
      expect(line).toContain("does not exist");
      expect(line).toContain("not retried");
      expect(line).not.toContain("attempts");
    },
    40_000,
  );
});

test("db copy into a SQLite file that does not exist refuses and says how to create it", async () => {
  const cwd = folder();
  expect((await tollgate(["db", "migrate"], { cwd })).code).toBe(0);
  const r = await tollgate(["db", "copy", "--to", "copy.db"], { cwd });
  expect(r.code).toBe(1);
  expect(oneLine(r)).toStartWith(`error: no database at ${join(cwd, "copy.db")} (--to)`);
  expect(r.stderr).toContain("DATABASE_PATH=copy.db tollgate db migrate");
  expect(existsSync(join(cwd, "copy.db"))).toBe(false);
}, 20_000);

/** A folder with a database, made as an operator would. */
async function site(): Promise<string> {
  const cwd = folder();
  const r = await tollgate(["db", "migrate"], { cwd });
  expect(r.code).toBe(0);
  return cwd;
}

/** Every field name at any depth, to check that --json speaks snake_case. */
function fieldNames(value: unknown): string[] {
  if (Array.isArray(value)) return value.flatMap(fieldNames);
  if (value === null || typeof value !== "object") return [];
  return Object.entries(value).flatMap(([k, v]) => [k, ...fieldNames(v)]);
}

describe("a consistent CLI", () => {
  test("--yes skips the question; the old --force still does, with a warning", async () => {
    const cwd = await site();
    const make = async (name: string) =>
      JSON.parse(
        (await tollgate(["keys", "create", "--name", name, "--limit", "1k", "--json"], { cwd }))
          .stdout,
      ) as { id: string };
    const a = await make("a");
    const b = await make("b");
    const yes = await tollgate(["keys", "delete", a.id, "--yes"], { cwd });
    expect(yes.stderr).toBe("");
    expect(yes.code).toBe(0);
    const old = await tollgate(["keys", "delete", b.id, "--force"], { cwd });
    expect(old.code).toBe(0);
    expect(oneLine(old)).toStartWith("warning: --force no longer skips the question");
    expect(old.stderr).toContain("use --yes");
  }, 30_000);

  test("restore --yes asks nothing and still refuses while a gateway serves; --force overrides that", async () => {
    const g = new GatewayProcess({ env: { BACKUP_DIR: join(folder(), "backups") } });
    try {
      await g.start();
      const backup = await g.cli(["backup", "--json"]);
      expect(backup.code).toBe(0);
      const file = (JSON.parse(backup.stdout) as { path: string }).path;
      const refused = await g.cli(["restore", file, "--yes"]);
      expect(refused.code).toBe(1);
      expect(refused.stderr).toContain("stop it first");
      expect(refused.stderr).not.toMatch(/\n\s+at /);
      const forced = await g.cli(["restore", file, "--yes", "--force"]);
      expect(forced.code).toBe(0);
      expect(forced.stderr).not.toContain("--force no longer");
    } finally {
      await g.close();
    }
  }, 60_000);

  test("every --json output is JSON in snake_case, backup verify included", async () => {
    const cwd = await site();
    const legacy = join(cwd, "apikeys.json");
    writeFileSync(legacy, JSON.stringify({ keys: [] }));
    const backup = await tollgate(["backup", "--json"], { cwd });
    expect(backup.code).toBe(0);
    const made = JSON.parse(backup.stdout) as { path: string };
    const outputs = [
      backup.stdout,
      (await tollgate(["backup", "verify", made.path, "--json"], { cwd })).stdout,
      (await tollgate(["backups", "list", "--json"], { cwd })).stdout,
      (await tollgate(["migrate", "--file", legacy, "--dry-run", "--json"], { cwd })).stdout,
      (await tollgate(["db", "copy", "--to", "other.db", "--dry-run", "--json"], { cwd })).stdout,
    ];
    // db copy wants its target to exist: make it, then ask again.
    expect(
      (await tollgate(["db", "migrate"], { cwd, env: { DATABASE_PATH: "other.db" } })).code,
    ).toBe(0);
    outputs[4] = (
      await tollgate(["db", "copy", "--to", "other.db", "--dry-run", "--json"], { cwd })
    ).stdout;
    for (const out of outputs) {
      const names = fieldNames(JSON.parse(out));
      expect(names.length).toBeGreaterThan(0);
      expect(names.filter((n) => /[A-Z]/.test(n))).toEqual([]);
    }
    expect(JSON.parse(outputs[1] as string)).toMatchObject({ ok: true, restorable_here: true });
  }, 60_000);

  test("keys create refuses a limit of 0 and a past expiry, pointing at --disable", async () => {
    const cwd = await site();
    for (const extra of [
      ["--limit", "0"],
      ["--limit", "1000", "--expires", "2020-01-01"],
    ]) {
      const r = await tollgate(["keys", "create", "--name", "x", ...extra], { cwd });
      expect(r.code).toBe(1);
      expect(r.stderr).toContain("--disable");
    }
    const list = await tollgate(["keys", "list", "--json"], { cwd });
    expect((JSON.parse(list.stdout) as { total: number }).total).toBe(0);
  }, 30_000);

  test("relative times work for usage --from, --version prints the version, help marks required options", async () => {
    const cwd = await site();
    const usage = await tollgate(["usage", "--from", "30d", "--step", "1d", "--json"], { cwd });
    expect(usage.stderr).toBe("");
    expect(usage.code).toBe(0);
    const range = JSON.parse(usage.stdout) as { from: string };
    expect(Math.abs(Date.parse(range.from) - (Date.now() - 30 * 86_400_000))).toBeLessThan(
      86_400_000 + 60_000,
    );

    const version = await tollgate(["--version"], { cwd });
    const pkg = (await Bun.file(join(REPO_ROOT, "package.json")).json()) as { version: string };
    expect(version.stdout.trim()).toBe(pkg.version);
    expect(version.code).toBe(0);

    const help = await tollgate(["keys", "create", "--help"], { cwd });
    expect(help.stdout).toMatch(/--name <name>\s+\(required\)/);
    expect(help.stdout).toMatch(/--limit <tokens>\s+\(required\)/);
    expect(help.stdout).not.toMatch(/--model <model>\s+\(required\)/);
  }, 30_000);
});

describe("clear messages", () => {
  test("PORT=abc says PORT must be a number; a bad upstream URL says what is wrong", async () => {
    const cwd = folder();
    const cases: Array<[Record<string, string>, string]> = [
      [{ PORT: "abc" }, "error: invalid configuration: PORT: must be a number"],
      [
        { UPSTREAM_OPENAI_URL: "https://user:pw@api.example.com/v1" },
        "error: invalid configuration: UPSTREAM_OPENAI_URL: must not hold credentials",
      ],
      [
        { UPSTREAM_ANTHROPIC_URL: "ftp://api.example.com/a" },
        "error: invalid configuration: UPSTREAM_ANTHROPIC_URL: must start with http:// or https://",
      ],
      [
        { UPSTREAM_OPENAI_URL: "https://api.example.com/v1?key=1" },
        "error: invalid configuration: UPSTREAM_OPENAI_URL: must not have a query",
      ],
    ];
    for (const [env, start] of cases) {
      const r = await tollgate(["serve"], { cwd, env: { HOST: "127.0.0.1", ...env } });
      expect(r.code).toBe(1);
      expect(oneLine(r)).toStartWith(start);
    }
    expect(readdirSync(cwd)).toEqual([]);
  }, 30_000);

  test("output whose reader has gone: one line and a failure, not a trace", async () => {
    const cwd = await site();
    expect((await tollgate(["keys", "create", "--name", "a", "--limit", "10"], { cwd })).code).toBe(
      0,
    );
    const cases = [
      ["keys", "list"],
      ["keys", "list", "--json"],
      ["keys", "create", "--name", "b", "--limit", "10"],
    ];
    for (const args of cases) {
      // `true` reads nothing and is gone long before the CLI writes.
      const piped = ["bash", "-c", 'set -o pipefail; "$@" | true', "pipe"];
      const r = await run([...piped, process.execPath, MAIN, ...args], { cwd });
      expect(r.code).toBe(1);
      expect(oneLine(r)).toContain("broken pipe");
    }
    // The command itself ran: the key whose secret was cut off exists.
    const listed = await tollgate(["keys", "list", "--json"], { cwd });
    expect(
      JSON.parse(listed.stdout)
        .keys.map((k: { name: string }) => k.name)
        .sort(),
    ).toEqual(["a", "b"]);
  }, 30_000);

  test("a legacy file: a syntax error gives line and column, a wrong outline shows the expected one", async () => {
    const cwd = await site();
    const broken = join(cwd, "broken.json");
    writeFileSync(broken, '{\n  "keys": [\n    {"key": "pk_secret", "name": "a",}\n  ]\n}\n');
    const r1 = await tollgate(["migrate", "--file", broken, "--yes"], { cwd });
    expect(r1.code).toBe(2);
    expect(r1.stderr).toContain("not valid JSON: line 3, column 38:");
    expect(r1.stderr).not.toContain("pk_secret");

    const wrong = join(cwd, "wrong.json");
    writeFileSync(wrong, JSON.stringify([{ key: "pk_secret", name: "a" }]));
    const r2 = await tollgate(["migrate", "--file", wrong, "--yes"], { cwd });
    expect(r2.code).toBe(2);
    expect(r2.stderr).toContain("A legacy key file looks like this:");
    expect(r2.stderr).toContain('"token_limit_per_5h": 100000');
    expect(r2.stderr).toContain("docs/migration.md");
    expect(r2.stderr).not.toContain("pk_secret");
  }, 30_000);
});
