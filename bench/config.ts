/**
 * Benchmark settings from the environment, with defaults that keep a full run
 * under about five minutes on a 2-core machine.
 */
import { MAX_BENCH_KEYS } from "./keys.ts";
import type { BenchConfig, PgConfig } from "./report.ts";
import { AGENT_SCENARIOS, SCENARIOS, type ScenarioId, type TargetId } from "./scenarios.ts";

const ALL_TARGETS: TargetId[] = ["direct", "bare", "tollgate"];

function numberFrom(name: string, fallback: number, allowZero = false): number {
  const raw = process.env[name];
  if (raw === undefined || raw === "") return fallback;
  const n = Number(raw);
  if (!Number.isFinite(n) || n < 0 || (n === 0 && !allowZero)) {
    throw new Error(
      `${name} must be a ${allowZero ? "non-negative" : "positive"} number, got "${raw}"`,
    );
  }
  return n;
}

function list<T extends string>(name: string, allowed: readonly T[]): T[] {
  const raw = process.env[name];
  if (raw === undefined || raw === "") return [...allowed];
  const picked = raw.split(",").map((s) => s.trim());
  for (const item of picked) {
    if (!allowed.includes(item as T)) {
      throw new Error(`${name}: unknown "${item}", expected some of ${allowed.join(",")}`);
    }
  }
  // Keep the canonical order so tables always read the same way.
  return allowed.filter((a) => picked.includes(a));
}

const DEFAULT_PG_URL = "postgres://postgres@127.0.0.1:5432/postgres";

/** Host, port and database of a URL: what the report may show (no user or password). */
export function describePgUrl(url: string): string {
  try {
    const u = new URL(url);
    return `${u.hostname}:${u.port || "5432"}${u.pathname}`;
  } catch {
    return "(unparsable URL)";
  }
}

function readPgConfig(): PgConfig {
  const raw = (process.env.BENCH_PG ?? "").trim().toLowerCase();
  const modes: Record<string, PgConfig["mode"]> = {
    "": "auto",
    auto: "auto",
    "1": "on",
    "0": "off",
  };
  const mode = modes[raw];
  if (mode === undefined) throw new Error(`BENCH_PG must be 0, 1 or auto, got "${raw}"`);
  const adminUrl = process.env.BENCH_PG_URL || DEFAULT_PG_URL;
  if (!/^postgres(ql)?:\/\//.test(adminUrl)) {
    throw new Error(`BENCH_PG_URL must be a postgres:// URL, got "${describePgUrl(adminUrl)}"`);
  }
  const keys = Math.round(numberFrom("BENCH_PG_KEYS", 200));
  // Usage is read back with one `keys list` page, which the hot key shares.
  if (keys < 2 || keys > MAX_BENCH_KEYS) {
    throw new Error(`BENCH_PG_KEYS must be between 2 and ${MAX_BENCH_KEYS}, got ${keys}`);
  }
  return { mode, adminUrl, server: describePgUrl(adminUrl), keys };
}

export function readConfig(): BenchConfig {
  return {
    targets: list("BENCH_TARGETS", ALL_TARGETS),
    scenarios: list(
      "BENCH_SCENARIOS",
      SCENARIOS.map((s) => s.id),
    ) as ScenarioId[],
    durationSec: numberFrom("BENCH_DURATION", 10),
    connections: Math.round(numberFrom("BENCH_CONNECTIONS", 50)),
    warmupSec: numberFrom("BENCH_WARMUP", 1, true),
    latencyRate: numberFrom("BENCH_LATENCY_RATE", 500),
    latencyDurationSec: numberFrom("BENCH_LATENCY_DURATION", 5),
    agent: readAgentConfig(),
    pg: readPgConfig(),
  };
}

function readAgentConfig(): BenchConfig["agent"] {
  const raw = (process.env.BENCH_AGENT ?? "1").trim();
  if (raw !== "0" && raw !== "1") throw new Error(`BENCH_AGENT must be 0 or 1, got "${raw}"`);
  if (raw === "0") return null;
  return {
    connections: Math.round(numberFrom("BENCH_AGENT_CONNECTIONS", 10)),
    latencyRate: numberFrom("BENCH_AGENT_LATENCY_RATE", 50),
  };
}

/** Rough wall time of a run, for the watchdog: phases plus per-process start-up. */
export function expectedSeconds(config: BenchConfig): number {
  const cells = config.targets.length * config.scenarios.length;
  const perCell = config.warmupSec + config.durationSec + config.latencyDurationSec + 2;
  const agentCells = config.agent ? config.targets.length * AGENT_SCENARIOS.length : 0;
  const main = (cells + agentCells) * perCell + 20;
  if (config.pg.mode === "off") return main;
  // Key creation (a CLI process each, a few at a time), four phases with their
  // token checks, and the start and stop of two instances.
  return main + config.pg.keys * 0.2 + 4 * (config.warmupSec + config.durationSec + 8) + 20;
}
