/**
 * The CLI as an operator meets it: spawned as a process, from a folder of its
 * own, with nothing but its environment and arguments.
 */
import { afterAll, describe, expect, test } from "bun:test";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type CliResult, REPO_ROOT } from "../harness/gateway.ts";

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
async function tollgate(
  args: string[],
  o: { cwd: string; env?: Record<string, string> },
): Promise<CliResult> {
  const proc = Bun.spawn([process.execPath, MAIN, ...args], {
    cwd: o.cwd,
    env: { PATH: process.env.PATH ?? "", HOME: process.env.HOME ?? "", ...o.env },
    stdin: "ignore",
    stdout: "pipe",
    stderr: "pipe",
    timeout: 30_000,
    killSignal: "SIGKILL",
  });
  const [stdout, stderr, code] = await Promise.all([
    new Response(proc.stdout).text(),
    new Response(proc.stderr).text(),
    proc.exited,
  ]);
  return { code, stdout, stderr };
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
