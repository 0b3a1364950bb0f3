/**
 * Without PostgreSQL the PostgreSQL suites skip, loudly, so `npm test` passes
 * on a machine with only Node and npm; with REQUIRE_POSTGRES=1 (set by
 * .ci/run) the same suites fail instead, and nothing falls back to PGlite, so
 * CI can never go green without its PostgreSQL tests.
 */

import { expect, test } from "bun:test";
import { join } from "node:path";
import { REPO_ROOT } from "./gateway.ts";
import { testNeedingPostgres } from "./require-postgres.ts";

const FIXTURE = join(REPO_ROOT, "test", "harness", "fixtures", "needs-postgres.ts");

async function runSuite(env: Record<string, string | undefined>) {
  const childEnv: Record<string, string | undefined> = { ...process.env, ...env };
  for (const [name, value] of Object.entries(env)) if (value === undefined) delete childEnv[name];
  const proc = Bun.spawn([process.execPath, "test", FIXTURE], {
    cwd: REPO_ROOT,
    env: childEnv,
    stdout: "pipe",
    stderr: "pipe",
  });
  const [stdout, stderr, code] = await Promise.all([
    new Response(proc.stdout).text(),
    new Response(proc.stderr).text(),
    proc.exited,
  ]);
  return { code, output: stdout + stderr };
}

const NO_BINARIES = "/nonexistent/postgresql/bin";

test("no PostgreSQL binaries and REQUIRE_POSTGRES unset: skipped, with a loud line", async () => {
  const r = await runSuite({ PG_BIN_DIR: NO_BINARIES, REQUIRE_POSTGRES: undefined });
  expect(r.output).toContain('SKIPPING PostgreSQL tests "needs private clusters"');
  expect(r.output).toMatch(/\b1 skip/);
  expect(r.output).toMatch(/\b0 fail/);
  expect(r.code).toBe(0);
}, 30_000);

test("no PostgreSQL binaries and REQUIRE_POSTGRES=1: the run fails and says why", async () => {
  const r = await runSuite({ PG_BIN_DIR: NO_BINARIES, REQUIRE_POSTGRES: "1" });
  expect(r.code).not.toBe(0);
  expect(r.output).toContain('REQUIRE_POSTGRES=1 but "needs private clusters" cannot run');
  expect(r.output).toContain("initdb");
  expect(r.output).toMatch(/\b1 fail/);
}, 30_000);

test("no TEST_DATABASE_URL and REQUIRE_POSTGRES=1: no PGlite, the run fails and says why", async () => {
  const r = await runSuite({
    FIXTURE_OPEN_DATABASE: "1",
    TEST_DATABASE_URL: undefined,
    REQUIRE_POSTGRES: "1",
  });
  expect(r.code).not.toBe(0);
  expect(r.output).toContain("REQUIRE_POSTGRES=1 but the PostgreSQL tests would fall back");
  expect(r.output).not.toContain("running against PGlite");
}, 30_000);

testNeedingPostgres(
  "with a server and REQUIRE_POSTGRES=1: the suites run",
  process.env.TEST_DATABASE_URL ? undefined : "no TEST_DATABASE_URL",
  async () => {
    const r = await runSuite({ FIXTURE_OPEN_DATABASE: "1", REQUIRE_POSTGRES: "1" });
    expect(r.output).toMatch(/\b0 fail/);
    expect(r.output).toMatch(/\b2 pass/);
    expect(r.output).not.toMatch(/\b[1-9]\d* skip/);
    expect(r.code).toBe(0);
  },
  30_000,
);
