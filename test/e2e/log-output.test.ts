/**
 * The gateway's log is its stdout, and whatever reads it may go away: a log
 * collector that died, `npm start | head`. The gateway must go on serving
 * and charging, and still stop when told to.
 */
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { closeSync, mkdtempSync, openSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import OpenAI from "openai";
import {
  cliOutput,
  E2E_TIMEOUT_MS,
  freePort,
  HOOK_TIMEOUT_MS,
  operatorEnv,
  REPO_ROOT,
  waitFor,
} from "../harness/gateway.ts";
import { type MockUpstream, startMockUpstream } from "../harness/mock-upstream.ts";

setDefaultTimeout(E2E_TIMEOUT_MS);

let mock: MockUpstream;
beforeAll(async () => {
  mock = await startMockUpstream();
}, HOOK_TIMEOUT_MS);
afterAll(async () => {
  await mock?.stop();
}, HOOK_TIMEOUT_MS);

describe("the log's reader goes away", () => {
  test("the gateway goes on serving and charging, says so once on stderr, and stops cleanly", async () => {
    const dir = mkdtempSync(join(tmpdir(), "tollgate-log-output-"));
    const fifo = join(dir, "log");
    expect(Bun.spawnSync(["mkfifo", fifo]).exitCode).toBe(0);
    // A reader that takes the first 200 bytes of the log and leaves.
    const reader = Bun.spawn(["head", "-c", "200", fifo], { stdout: "ignore" });
    const logEnd = openSync(fifo, "w");
    const port = freePort();
    const env = operatorEnv(mock, port, dir);
    const gateway = Bun.spawn([process.execPath, "src/cli/main.ts", "serve"], {
      cwd: REPO_ROOT,
      env,
      stdout: logEnd,
      stderr: "pipe",
    });
    closeSync(logEnd);
    const stderr = new Response(gateway.stderr).text();
    const url = `http://127.0.0.1:${port}`;
    try {
      await waitFor(
        "the gateway to answer /health",
        async () => ((await fetch(`${url}/health`)).status === 200 ? true : undefined),
        20_000,
        50,
      );
      // Every request logs a line: the reader has its 200 bytes and is gone.
      for (let i = 0; i < 5; i++) await (await fetch(`${url}/health`)).arrayBuffer();
      expect(await reader.exited).toBe(0);

      const created = JSON.parse(
        await cliOutput(env, ["keys", "create", "--name", "unlogged", "--limit", "1M", "--json"]),
      ) as { id: string; key: string };
      const client = new OpenAI({ apiKey: created.key, baseURL: `${url}/v1`, maxRetries: 0 });
      for (let i = 0; i < 10; i++) {
        const answer = await client.chat.completions.create({
          model: "glm-4.7",
          messages: [{ role: "user", content: "hi" }],
        });
        expect(answer.choices[0]?.message.content).toBeString();
      }
      const stats = (await (
        await fetch(`${url}/stats`, { headers: { authorization: `Bearer ${created.key}` } })
      ).json()) as { total_requests: number; total_lifetime_tokens: number };
      expect(stats.total_requests).toBe(10);
      expect(stats.total_lifetime_tokens).toBeGreaterThan(0);

      gateway.kill("SIGTERM");
      const code = await Promise.race([gateway.exited, Bun.sleep(10_000).then(() => "hung")]);
      expect(code).toBe(0);
      const said = (await stderr).trim().split("\n");
      expect(said).toEqual([expect.stringContaining("the log output was closed (EPIPE)")]);
    } finally {
      gateway.kill("SIGKILL");
      reader.kill("SIGKILL");
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
