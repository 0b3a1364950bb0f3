/**
 * Throughput phases. autocannon runs under node as its own process so the load
 * generator never shares an event loop with the runner; we read its --json
 * summary from stdout.
 */
import { join } from "node:path";
import { spawnChild, stopChild, withTimeout } from "./children.ts";

const AUTOCANNON = join(import.meta.dir, "..", "node_modules", ".bin", "autocannon");
const SPREAD_LOAD = join(import.meta.dir, "spread-load.mjs");

export interface LoadSpec {
  url: string;
  headers: Record<string, string>;
  body: string;
  /** A file holding the body instead, for bodies too long for a command line (over 128 KB). */
  bodyFile?: string;
  connections: number;
  durationSec: number;
}

export interface ThroughputResult {
  /** Successful (2xx) responses per second over the phase. */
  rps: number;
  ok: number;
  non2xx: number;
  /** The non-2xx answers by class, to tell refusals (4xx) from failures (5xx). */
  http4xx: number;
  http5xx: number;
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
  "4xx": number;
  "5xx": number;
  latency: { p50: number; p99: number };
}

/** Runs one load generator to completion and reads autocannon's JSON result from its stdout. */
async function runLoad(
  name: string,
  cmd: string[],
  durationSec: number,
): Promise<ThroughputResult> {
  const child = spawnChild(name, cmd, { env: { PATH: process.env.PATH ?? "" } });
  const out = await withTimeout(
    child.stdout(),
    (durationSec + 30) * 1000,
    `${name} did not finish`,
  ).catch(async (error: unknown) => {
    await stopChild(child);
    throw error;
  });
  const line = out.trim().split("\n").pop() ?? "";
  let json: AutocannonJson;
  try {
    json = JSON.parse(line) as AutocannonJson;
  } catch {
    throw new Error(`${name} gave no JSON: ${out.slice(-500)} ${child.stderrTail()}`);
  }
  const seconds = json.duration > 0 ? json.duration : durationSec;
  return {
    rps: json["2xx"] / seconds,
    ok: json["2xx"],
    non2xx: json.non2xx,
    http4xx: json["4xx"],
    http5xx: json["5xx"],
    errors: json.errors,
    timeouts: json.timeouts,
    latencyP50Ms: json.latency.p50,
    latencyP99Ms: json.latency.p99,
  };
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
    ...(spec.bodyFile ? ["--input", spec.bodyFile] : ["--body", spec.body]),
  ];
  for (const [name, value] of Object.entries(spec.headers))
    args.push("--headers", `${name}=${value}`);
  args.push(spec.url);
  return runLoad("autocannon", args, spec.durationSec);
}

/**
 * The same load over many keys: `headers` is the set for the first key, and
 * every connection cycles through all keys from its own starting point (see
 * spread-load.mjs). `slot` of `slots` interleaves several such generators, so
 * two of them (one per instance) do not start on the same keys either.
 */
export interface SpreadSpec extends LoadSpec {
  keys: string[];
  slot: number;
  slots: number;
}

export function runSpreadLoad(spec: SpreadSpec): Promise<ThroughputResult> {
  return runLoad(
    "autocannon (many keys)",
    ["node", SPREAD_LOAD, JSON.stringify(spec)],
    spec.durationSec,
  );
}
