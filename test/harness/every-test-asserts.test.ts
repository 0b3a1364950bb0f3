import { expect, test } from "bun:test";
import { join } from "node:path";
import { REPO_ROOT } from "./gateway.ts";

test("a test without any assertion fails the run; the one with an assertion passes", async () => {
  const proc = Bun.spawn(
    [process.execPath, "test", join(REPO_ROOT, "test", "harness", "fixtures", "no-assertion.ts")],
    { cwd: REPO_ROOT, stdout: "pipe", stderr: "pipe" },
  );
  const [stdout, stderr, code] = await Promise.all([
    new Response(proc.stdout).text(),
    new Response(proc.stderr).text(),
    proc.exited,
  ]);
  const output = stdout + stderr;
  expect(code).not.toBe(0);
  expect(output).toMatch(/\(fail\) asserts nothing/);
  expect(output).toMatch(/\(pass\) asserts\b/);
  expect(output).toContain("expected at least one assertion");
}, 30_000);
