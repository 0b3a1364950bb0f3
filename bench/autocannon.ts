/**
 * Throughput phases. autocannon runs under node as its own process so the load
 * generator never shares an event loop with the runner; we read its --json
 * summary from stdout.
 */
import { join } from "node:path";
import { spawnChild, stopChild, withTimeout } from "./children.ts";

const AUTOCANNON = join(import.meta.dir, "..", "node_modules", ".bin", "autocannon");

export interface LoadSpec {
  url: string;
  headers: Record<string, string>;
  body: string;
  connections: number;
  durationSec: number;
}

export interface ThroughputResult {
  /** Successful (2xx) responses per second over the phase. */
  rps: number;
  ok: number;
  non2xx: number;
  errors: number;
  timeouts: number;
  /** autocannon's own latency figures, whole milliseconds under full load. */
  latencyP50Ms: number;
  latencyP99Ms: number;
}

interface AutocannonJson {
  duration: number;
  errors: number;
  timeouts: number;
  non2xx: number;
  "2xx": number;
  latency: { p50: number; p99: number };
}

export async function runAutocannon(spec: LoadSpec): Promise<ThroughputResult> {
  const args = [
    "node",
    AUTOCANNON,
    "--json",
    "--no-progress",
    "--connections",
    String(spec.connections),
    "--duration",
    String(spec.durationSec),
    "--method",
    "POST",
    "--body",
    spec.body,
  ];
  for (const [name, value] of Object.entries(spec.headers))
    args.push("--headers", `${name}=${value}`);
  args.push(spec.url);

  const child = spawnChild("autocannon", args, { env: { PATH: process.env.PATH ?? "" } });
  const out = await withTimeout(
    child.stdout(),
    (spec.durationSec + 30) * 1000,
    "autocannon did not finish",
  ).catch(async (error: unknown) => {
    await stopChild(child);
    throw error;
  });
  const line = out.trim().split("\n").pop() ?? "";
  let json: AutocannonJson;
  try {
    json = JSON.parse(line) as AutocannonJson;
  } catch {
    throw new Error(`autocannon gave no JSON: ${out.slice(-500)} ${child.stderrTail()}`);
  }
  const seconds = json.duration > 0 ? json.duration : spec.durationSec;
  return {
    rps: json["2xx"] / seconds,
    ok: json["2xx"],
    non2xx: json.non2xx,
    errors: json.errors,
    timeouts: json.timeouts,
    latencyP50Ms: json.latency.p50,
    latencyP99Ms: json.latency.p99,
  };
}
