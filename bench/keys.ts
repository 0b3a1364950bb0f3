/**
 * Keys go through Tollgate's own CLI, the way an operator makes them, and usage
 * is read back through it too (`keys list --json`): that reads the database
 * itself, so it shows only what every instance has durably written.
 */
import { join } from "node:path";
import { spawnChild, withTimeout } from "./children.ts";

export const CLI = join(import.meta.dir, "..", "src", "cli", "main.ts");
// So large the quota never trips: the benchmark measures cost, not refusals.
const BENCH_LIMIT = "1000000000000000";
// `keys list` gives at most 500 keys a page; totals are read page by page.
const PAGE = 500;
// The most keys the many-keys phases create (each through the CLI).
export const MAX_BENCH_KEYS = 5000;
// A listed key is about 600 bytes of pretty JSON: keep all of a full page.
const CLI_STDOUT_BYTES = 4 * 1024 * 1024;

export interface BenchKey {
  id: string;
  /** The secret, pk_… */
  key: string;
}

export interface KeyTotals {
  tokens: number;
  requests: number;
}

/** Runs one CLI command to completion and returns its stdout. */
async function cli(env: Record<string, string>, cwd: string, args: string[]): Promise<string> {
  // process.execPath is the bun binary itself, so no wrapper process sits in between.
  const child = spawnChild(
    `tollgate ${args.slice(0, 2).join(" ")}`,
    [process.execPath, CLI, ...args],
    { env, cwd, stdoutLimit: CLI_STDOUT_BYTES },
  );
  const out = await withTimeout(child.stdout(), 60_000, `tollgate ${args.join(" ")} hung`);
  if (child.proc.exitCode !== 0) {
    throw new Error(
      `tollgate ${args.slice(0, 2).join(" ")} failed (${child.proc.exitCode}): ${child.stderrTail()}`,
    );
  }
  return out;
}

/** The CLI prints one JSON document; tolerate log lines around it. */
function parseJson(out: string): unknown {
  const trimmed = out.trim();
  try {
    return JSON.parse(trimmed);
  } catch {
    // Pretty-printed JSON starts on a line of its own.
    const start = trimmed.search(/^[{[]/m);
    return start === -1 ? undefined : JSON.parse(trimmed.slice(start));
  }
}

/** `tollgate db migrate`: only it (and serve) may create a database; key commands need one. */
export async function migrate(env: Record<string, string>, cwd: string): Promise<void> {
  await cli(env, cwd, ["db", "migrate"]);
}

export async function createKey(
  env: Record<string, string>,
  cwd: string,
  name: string,
): Promise<BenchKey> {
  const out = await cli(env, cwd, [
    "keys",
    "create",
    "--name",
    name,
    "--limit",
    BENCH_LIMIT,
    "--json",
  ]);
  const parsed = parseJson(out) as { id?: unknown; key?: unknown } | undefined;
  const id = parsed?.id;
  const key = parsed?.key;
  if (typeof id !== "string" || typeof key !== "string" || !key.startsWith("pk_")) {
    throw new Error(`tollgate keys create printed no pk_ key: ${out.slice(0, 300)}`);
  }
  return { id, key };
}

/**
 * `count` keys, `parallel` CLI processes at a time. Each run is a fresh bun
 * process (~0.3 s of CPU), so on two cores a little parallelism is what pays.
 */
export async function createKeys(
  env: Record<string, string>,
  cwd: string,
  count: number,
  parallel: number,
  namePrefix: string,
): Promise<BenchKey[]> {
  const keys: BenchKey[] = new Array(count);
  let next = 0;
  const worker = async () => {
    for (let i = next++; i < count; i = next++) {
      keys[i] = await createKey(env, cwd, `${namePrefix}-${i}`);
    }
  };
  await Promise.all(Array.from({ length: Math.min(parallel, count) }, worker));
  return keys;
}

/** Lifetime totals of every key, by id, as the database holds them (read page by page). */
export async function listTotals(
  env: Record<string, string>,
  cwd: string,
): Promise<Map<string, KeyTotals>> {
  const totals = new Map<string, KeyTotals>();
  for (let offset = 0; ; offset += PAGE) {
    const args = ["keys", "list", "--json", "--limit", String(PAGE), "--offset", String(offset)];
    const out = await cli(env, cwd, args);
    const parsed = parseJson(out) as
      | {
          total?: unknown;
          keys?: { id: string; total_lifetime_tokens: unknown; total_requests: unknown }[];
        }
      | undefined;
    if (!Array.isArray(parsed?.keys)) {
      throw new Error(`tollgate keys list printed no keys: ${out.slice(0, 300)}`);
    }
    for (const k of parsed.keys) {
      totals.set(k.id, {
        tokens: Number(k.total_lifetime_tokens),
        requests: Number(k.total_requests),
      });
    }
    if (parsed.keys.length < PAGE || totals.size >= Number(parsed.total)) return totals;
  }
}
