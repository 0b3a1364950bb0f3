/**
 * Benchmark settings from the environment, with defaults that keep a full run
 * under about four minutes on a 2-core machine.
 */
import type { BenchConfig } from "./report.ts";
import { SCENARIOS, type ScenarioId, type TargetId } from "./scenarios.ts";

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
  };
}

/** Rough wall time of a run, for the watchdog: phases plus per-process start-up. */
export function expectedSeconds(config: BenchConfig): number {
  const cells = config.targets.length * config.scenarios.length;
  return cells * (config.warmupSec + config.durationSec + config.latencyDurationSec + 2) + 20;
}
