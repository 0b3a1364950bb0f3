/**
 * Starts Tollgate through its own CLI, the way an operator would: create a key
 * with a limit so large the quota never trips, then `serve` against the mock.
 * The gateway runs in a temporary directory so nothing it writes (database,
 * journal) lands in the repository.
 */
import { existsSync } from "node:fs";
import { join } from "node:path";
import { type Child, spawnChild, stopChild, withTimeout } from "./children.ts";

const ROOT = join(import.meta.dir, "..");
const CLI = join(ROOT, "src", "cli", "main.ts");
const BENCH_LIMIT = "1000000000000000";

export interface Gateway {
  url: string;
  key: string;
  child: Child;
}

export interface KeyStats {
  totalLifetimeTokens: number;
  totalRequests: number;
}

export function gatewayAvailable(): boolean {
  return existsSync(CLI);
}

/** Only what the gateway needs: an inherited DATABASE_URL would silently switch it to PostgreSQL. */
function gatewayEnv(dir: string, upstream: string): Record<string, string> {
  const env: Record<string, string> = {
    PATH: process.env.PATH ?? "",
    HOME: process.env.HOME ?? dir,
    TMPDIR: dir,
    DATABASE_PATH: join(dir, "tollgate.db"),
    UPSTREAM_API_KEY: "bench-upstream-key",
    UPSTREAM_OPENAI_URL: `${upstream}/v4`,
    UPSTREAM_ANTHROPIC_URL: `${upstream}/anthropic`,
    LOG_LEVEL: "error",
  };
  const databaseUrl = process.env.BENCH_DATABASE_URL;
  if (databaseUrl) env.DATABASE_URL = databaseUrl;
  return env;
}

async function freePort(): Promise<number> {
  const listener = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
  const port = listener.port;
  listener.stop(true);
  return port;
}

/** The CLI prints one JSON object; tolerate log lines around it. */
function parseKey(out: string): unknown {
  const candidates = [out.trim(), ...out.trim().split("\n").reverse()];
  for (const text of candidates) {
    try {
      const parsed = JSON.parse(text) as { key?: unknown };
      if (parsed !== null && typeof parsed === "object" && "key" in parsed) return parsed.key;
    } catch {
      // not this one
    }
  }
  return undefined;
}

async function createKey(env: Record<string, string>, dir: string): Promise<string> {
  // process.execPath is the bun binary itself, so no wrapper process sits in between.
  const child = spawnChild(
    "tollgate keys create",
    [process.execPath, CLI, "keys", "create", "--name", "bench", "--limit", BENCH_LIMIT, "--json"],
    { env, cwd: dir },
  );
  const out = await withTimeout(child.stdout(), 60_000, "tollgate keys create hung");
  if (child.proc.exitCode !== 0) {
    throw new Error(`tollgate keys create failed (${child.proc.exitCode}): ${child.stderrTail()}`);
  }
  const key = parseKey(out);
  if (typeof key !== "string" || !key.startsWith("pk_")) {
    throw new Error(`tollgate keys create printed no pk_ key: ${out.slice(0, 300)}`);
  }
  return key;
}

async function waitHealthy(url: string, child: Child, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (child.proc.exitCode !== null) {
      throw new Error(`gateway exited (${child.proc.exitCode}): ${child.stderrTail()}`);
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

export async function startGateway(dir: string, upstream: string): Promise<Gateway> {
  const env = gatewayEnv(dir, upstream);
  const key = await createKey(env, dir);
  const port = await freePort();
  const child = spawnChild("tollgate serve", [process.execPath, CLI, "serve"], {
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
  return { url, key, child };
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
