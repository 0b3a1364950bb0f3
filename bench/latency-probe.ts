/**
 * Added-latency phases: an open-loop client that sends requests at a fixed rate
 * and times each one with sub-millisecond resolution.
 *
 * Why not autocannon --overallRate: autocannon records latency in a histogram of
 * whole milliseconds (p50 comes out as 0 or 1 on loopback), and its rate limit
 * fires each connection's per-second budget back to back at the top of every
 * second, then pads the histogram with coordinated-omission corrections. Neither
 * can resolve a 0.5 ms budget. This probe schedules request i at start + i/rate
 * whatever happened to earlier ones, so a slow answer cannot hide later delays.
 *
 * It runs as its own process (`bun bench/latency-probe.ts '<spec json>'`) so its
 * timers do not share the runner's event loop; `runLatencyProbe` spawns it.
 */
import { spawnChild, stopChild, withTimeout } from "./children.ts";

export interface ProbeSpec {
  url: string;
  headers: Record<string, string>;
  body: string;
  /** A file holding the body instead, for bodies too long for a command line (over 128 KB). */
  bodyFile?: string;
  /** Requests per second. */
  rate: number;
  durationSec: number;
  /** Sent at the same rate first but not recorded: warms the probe's own client. */
  warmupSec: number;
}

export interface ProbeResult {
  sent: number;
  ok: number;
  /** Successful warm-up requests (not in any figure below). */
  warmupOk: number;
  failed: number;
  /** Time to the complete response body, milliseconds. */
  p50Ms: number;
  p90Ms: number;
  p99Ms: number;
  maxMs: number;
  meanMs: number;
  /** Time to response headers (first byte of a stream), milliseconds. */
  ttfbP50Ms: number;
  ttfbP99Ms: number;
  /** How late the probe itself sent its requests; large values void the run. */
  lateP99Ms: number;
}

function percentile(sorted: Float64Array, p: number): number {
  if (sorted.length === 0) return Number.NaN;
  const index = Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1);
  return sorted[Math.max(0, index)] ?? Number.NaN;
}

function round3(n: number): number {
  return Math.round(n * 1000) / 1000;
}

async function probe(spec: ProbeSpec): Promise<ProbeResult> {
  const total = Math.max(1, Math.round(spec.rate * spec.durationSec));
  const warmup = Math.round(spec.rate * spec.warmupSec);
  const interval = 1000 / spec.rate;
  const totals = new Float64Array(total);
  const ttfbs = new Float64Array(total);
  const late = new Float64Array(total);
  let ok = 0;
  let warmupOk = 0;
  let failed = 0;
  let outstanding = 0;
  let allDone: () => void = () => {};
  const drained = new Promise<void>((resolve) => {
    allDone = resolve;
  });
  let sending = true;

  const send = (i: number, due: number): void => {
    const t0 = performance.now();
    const measured = i >= 0;
    if (measured) late[i] = t0 - due;
    outstanding++;
    fetch(spec.url, { method: "POST", headers: spec.headers, body: spec.body })
      .then(async (res) => {
        const t1 = performance.now();
        await res.arrayBuffer();
        const t2 = performance.now();
        if (!measured) {
          if (res.ok) warmupOk++;
          return;
        }
        if (res.status >= 200 && res.status < 300) {
          ttfbs[ok] = t1 - t0;
          totals[ok] = t2 - t0;
          ok++;
        } else {
          failed++;
        }
      })
      .catch(() => {
        if (measured) failed++;
      })
      .finally(() => {
        outstanding--;
        if (!sending && outstanding === 0) allDone();
      });
  };

  const start = performance.now() + 5;
  // Negative indexes are the warm-up requests.
  for (let i = -warmup; i < total; i++) {
    const due = start + (i + warmup) * interval;
    const wait = due - performance.now();
    // Timers are only millisecond-precise: sleep the bulk, then send on time-ish.
    if (wait >= 1) await Bun.sleep(wait);
    send(i, due);
  }
  sending = false;
  if (outstanding === 0) allDone();
  // Stragglers get a bounded grace; whatever is still out then counts as failed.
  let timer: Timer | undefined;
  await Promise.race([
    drained,
    new Promise((resolve) => {
      timer = setTimeout(resolve, 10_000);
    }),
  ]);
  clearTimeout(timer);
  failed += outstanding;

  const okTotals = totals.slice(0, ok).sort();
  const okTtfbs = ttfbs.slice(0, ok).sort();
  const sortedLate = late.sort();
  let sum = 0;
  for (const v of okTotals) sum += v;
  return {
    sent: total,
    ok,
    warmupOk,
    failed,
    p50Ms: round3(percentile(okTotals, 50)),
    p90Ms: round3(percentile(okTotals, 90)),
    p99Ms: round3(percentile(okTotals, 99)),
    maxMs: round3(okTotals[okTotals.length - 1] ?? Number.NaN),
    meanMs: round3(ok > 0 ? sum / ok : Number.NaN),
    ttfbP50Ms: round3(percentile(okTtfbs, 50)),
    ttfbP99Ms: round3(percentile(okTtfbs, 99)),
    lateP99Ms: round3(percentile(sortedLate, 99)),
  };
}

export async function runLatencyProbe(spec: ProbeSpec): Promise<ProbeResult> {
  const child = spawnChild(
    "latency-probe",
    [process.execPath, import.meta.path, JSON.stringify(spec)],
    {
      env: { PATH: process.env.PATH ?? "" },
    },
  );
  const out = await withTimeout(
    child.stdout(),
    (spec.durationSec + 30) * 1000,
    "latency probe did not finish",
  ).catch(async (error: unknown) => {
    await stopChild(child);
    throw error;
  });
  try {
    return JSON.parse(out.trim()) as ProbeResult;
  } catch {
    throw new Error(`latency probe gave no JSON: ${out.slice(-500)} ${child.stderrTail()}`);
  }
}

if (import.meta.main) {
  const spec = JSON.parse(process.argv[2] ?? "") as ProbeSpec;
  if (spec.bodyFile) spec.body = await Bun.file(spec.bodyFile).text();
  const result = await probe(spec);
  process.stdout.write(`${JSON.stringify(result)}\n`);
  // Idle keep-alive sockets would otherwise hold the process open.
  process.exit(0);
}
