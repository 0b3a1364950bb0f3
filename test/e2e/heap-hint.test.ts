/**
 * The engine's heap hint. `BUN_JSC_forceRAMSize` is read by the runtime as
 * it starts, so it must be in the server's own environment: every way an
 * operator starts the server (npm start, the package's bin) sets it to
 * 128 MiB, unless the operator has set it already (docs/operations.md,
 * Memory). The image and the systemd unit are checked in deploy.test.ts.
 */
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
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

/** The environment of the process serving on `port`: the bun running `serve` with that PORT. */
function serverEnvironment(port: number): Map<string, string> | undefined {
  for (const pid of readdirSync("/proc").filter((d) => /^\d+$/.test(d))) {
    let cmdline: string;
    let environ: string;
    try {
      cmdline = readFileSync(`/proc/${pid}/cmdline`, "utf8");
      environ = readFileSync(`/proc/${pid}/environ`, "utf8");
    } catch {
      continue;
    }
    const argv = cmdline.split("\0");
    if (!argv.some((a) => a.endsWith("main.ts")) || !argv.includes("serve")) continue;
    const env = new Map(
      environ
        .split("\0")
        .filter((kv) => kv.includes("="))
        .map((kv) => [kv.slice(0, kv.indexOf("=")), kv.slice(kv.indexOf("=") + 1)] as const),
    );
    if (env.get("PORT") === String(port)) return env;
  }
  return undefined;
}

async function heapHintOf(
  command: string[],
  extra: Record<string, string>,
): Promise<string | null> {
  const dir = mkdtempSync(join(tmpdir(), "tollgate-heap-"));
  const port = freePort();
  let child: ChildProcess | undefined;
  try {
    const [file, ...args] = command as [string, ...string[]];
    child = spawn(file, args, {
      cwd: REPO_ROOT,
      detached: true,
      stdio: "ignore",
      env: { ...operatorEnv(mock, port, dir), ...extra },
    });
    await waitFor(
      "the gateway to answer /health",
      async () =>
        (await fetch(`http://127.0.0.1:${port}/health`).catch(() => null))?.status === 200
          ? true
          : undefined,
      20_000,
      50,
    );
    const env = serverEnvironment(port);
    expect(env).toBeDefined();
    return env?.get("BUN_JSC_forceRAMSize") ?? null;
  } finally {
    if (child?.pid !== undefined && child.exitCode === null) process.kill(-child.pid, "SIGTERM");
    await new Promise((resolve) =>
      child?.exitCode !== null ? resolve(null) : child?.on("exit", resolve),
    );
    rmSync(dir, { recursive: true, force: true });
  }
}

const launchers: Array<[string, string[]]> = [
  ["npm start", ["npm", "start"]],
  ["bin/tollgate.js serve", ["node", "bin/tollgate.js", "serve"]],
];

describe("the server starts with the engine's heap sized for 128 MiB", () => {
  for (const [name, command] of launchers) {
    test(`${name}: set when the operator has not set it`, async () => {
      expect(await heapHintOf(command, {})).toBe("134217728");
    });

    test(`${name}: the operator's own value is kept`, async () => {
      expect(await heapHintOf(command, { BUN_JSC_forceRAMSize: "536870912" })).toBe("536870912");
    });
  }
});
