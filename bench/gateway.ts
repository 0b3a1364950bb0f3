/**
 * Starts Tollgate through its own CLI, the way an operator would: create a key
 * with a limit so large the quota never trips, then `serve` against the mock.
 * Each gateway runs in a temporary directory so nothing it writes (database,
 * journal) lands in the repository.
 */
import { existsSync, mkdirSync } from "node:fs";
import { join } from "node:path";
import { type Child, spawnChild, stopChild } from "./children.ts";
import { CLI, createKey, migrate } from "./keys.ts";

export interface Instance {
  url: string;
  child: Child;
}

export interface Gateway extends Instance {
  key: string;
}

export interface KeyStats {
  totalLifetimeTokens: number;
  totalRequests: number;
}

export function gatewayAvailable(): boolean {
  return existsSync(CLI);
}

/**
 * Only what the gateway needs: an inherited DATABASE_URL would silently switch
 * it to PostgreSQL. With a database URL, the journal goes to `dir`, so every
 * instance gets a folder of its own (two may not share one).
 */
export function gatewayEnv(
  dir: string,
  upstream: string,
  databaseUrl = process.env.BENCH_DATABASE_URL,
): Record<string, string> {
  mkdirSync(dir, { recursive: true });
  const env: Record<string, string> = {
    PATH: process.env.PATH ?? "",
    HOME: process.env.HOME ?? dir,
    TMPDIR: dir,
    DATABASE_PATH: join(dir, "tollgate.db"),
    JOURNAL_DIR: join(dir, "journal"),
    UPSTREAM_API_KEY: "bench-upstream-key",
    UPSTREAM_OPENAI_URL: `${upstream}/v4`,
    UPSTREAM_ANTHROPIC_URL: `${upstream}/anthropic`,
    // Warnings are rare (retries, dropped usage) and worth seeing; access logs are info.
    LOG_LEVEL: "warn",
    // As every launcher sets it (npm start, bin/tollgate.js, the image, the
    // unit): the engine's heap sized for 128 MiB, unless the shell says otherwise.
    BUN_JSC_forceRAMSize: process.env.BUN_JSC_forceRAMSize ?? "134217728",
  };
  if (databaseUrl) env.DATABASE_URL = databaseUrl;
  return env;
}

async function freePort(): Promise<number> {
  const listener = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
  const port = listener.port;
  listener.stop(true);
  return port;
}

async function waitHealthy(url: string, child: Child, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (child.proc.exitCode !== null) {
      throw new Error(
        `gateway exited (${child.proc.exitCode}): ${child.stderrTail()} ${child.stdoutTail()}`,
      );
    }
    try {
      const res = await fetch(`${url}/health`);
      await res.arrayBuffer();
      if (res.status === 200) return;
    } catch {
      // not listening yet
    }
    await Bun.sleep(100);
  }
  throw new Error(`gateway not healthy after ${timeoutMs} ms: ${child.stderrTail()}`);
}

/** `tollgate serve` with `env`, on a free loopback port, once it answers /health. */
export async function serveGateway(
  name: string,
  env: Record<string, string>,
  dir: string,
): Promise<Instance> {
  const port = await freePort();
  const child = spawnChild(name, [process.execPath, CLI, "serve"], {
    env: { ...env, HOST: "127.0.0.1", PORT: String(port) },
    cwd: dir,
  });
  const url = `http://127.0.0.1:${port}`;
  try {
    await waitHealthy(url, child, 30_000);
  } catch (error) {
    await stopChild(child);
    throw error;
  }
  return { url, child };
}

/** The baseline gateway: a fresh SQLite file (or BENCH_DATABASE_URL) and one key. */
export async function startGateway(dir: string, upstream: string): Promise<Gateway> {
  const env = gatewayEnv(dir, upstream);
  await migrate(env, dir);
  const { key } = await createKey(env, dir, "bench");
  const instance = await serveGateway("tollgate serve", env, dir);
  return { ...instance, key };
}

export async function keyStats(gateway: Gateway): Promise<KeyStats> {
  const res = await fetch(`${gateway.url}/stats`, {
    headers: { authorization: `Bearer ${gateway.key}` },
  });
  const text = await res.text();
  if (res.status !== 200)
    throw new Error(`GET /stats answered ${res.status}: ${text.slice(0, 300)}`);
  const body = JSON.parse(text) as { total_lifetime_tokens?: unknown; total_requests?: unknown };
  return {
    totalLifetimeTokens: Number(body.total_lifetime_tokens),
    totalRequests: Number(body.total_requests),
  };
}

/**
 * Lines a gateway logged at warn or above (its access log is info, so under
 * LOG_LEVEL=warn everything it prints counts), for the report.
 */
export function gatewayWarnings(child: Child): string[] {
  return child
    .stdoutTail()
    .split("\n")
    .filter((line) => line.trim() !== "");
}
