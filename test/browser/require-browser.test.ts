/**
 * Without Chromium the browser suites skip, loudly, so `npm test` passes on a
 * machine with only Node and npm; with REQUIRE_BROWSER=1 (set by .ci/run) a
 * missing Chromium, or one that does not start, fails the run instead, so CI
 * can never go green with the browser tests silently skipped.
 */

import { expect, setDefaultTimeout, test } from "bun:test";
import { join } from "node:path";
import { E2E_TIMEOUT_MS, REPO_ROOT } from "../harness/gateway.ts";

// Explicit, for two busy cores: the runner's 5 s default measures the machine.
setDefaultTimeout(E2E_TIMEOUT_MS);

const FIXTURE = join(REPO_ROOT, "test", "browser", "fixtures", "needs-browser.ts");

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

test("no Chromium and REQUIRE_BROWSER unset: skipped, with a loud line", async () => {
  const r = await runSuite({ CHROMIUM_PATH: "/nonexistent/chromium", REQUIRE_BROWSER: undefined });
  expect(r.output).toContain("SKIPPING browser tests");
  expect(r.output).toMatch(/\b0 fail/);
  expect(r.code).toBe(0);
}, 30_000);

test("no Chromium and REQUIRE_BROWSER=1: the run fails and says why", async () => {
  const r = await runSuite({ CHROMIUM_PATH: "/nonexistent/chromium", REQUIRE_BROWSER: "1" });
  expect(r.code).not.toBe(0);
  expect(r.output).toContain("REQUIRE_BROWSER=1");
  expect(r.output).toContain("/nonexistent/chromium");
  expect(r.output).not.toMatch(/\b0 fail/);
}, 30_000);

test("a Chromium that does not start and REQUIRE_BROWSER=1: the run fails and says why", async () => {
  // /bin/false exists and is executable, but is no browser.
  const r = await runSuite({ CHROMIUM_PATH: "/bin/false", REQUIRE_BROWSER: "1" });
  expect(r.code).not.toBe(0);
  expect(r.output).toContain("did not start");
  expect(r.output).not.toMatch(/\b0 fail/);
}, 60_000);
