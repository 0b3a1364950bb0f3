import { readdirSync, readFileSync } from "node:fs";
import { monitorEventLoopDelay } from "node:perf_hooks";
import type { Registry } from "./exposition.ts";
import { type Reading, ReadMetric } from "./local.ts";

// The process's own metrics, under the names and help texts Prometheus
// client libraries give them, read at each scrape. Left out: figures the
// runtime does not keep (per-space heap sizes, libuv handles: always 0
// here) and a Node.js version the process does not run.

/** A number from a /proc file, or undefined where there is none (not Linux). */
function procNumber(file: string, pattern: RegExp, scale = 1): number | undefined {
  try {
    const m = pattern.exec(readFileSync(file, "utf8"));
    return m ? Number(m[1]) * scale : undefined;
  } catch {
    return undefined;
  }
}

function openFds(): number | undefined {
  try {
    // The directory read holds one descriptor of its own.
    return readdirSync("/proc/self/fd").length - 1;
  } catch {
    return undefined;
  }
}

/** Waits one turn of the event loop and answers how long it took, in seconds. */
function lagNow(): Promise<number> {
  const start = performance.now();
  return new Promise((resolve) => setImmediate(() => resolve((performance.now() - start) / 1000)));
}

/** Event loop delays in nanoseconds, as the sampler keeps them. */
interface DelayFigures {
  min: number;
  max: number;
  mean: number;
  stddev: number;
  p50: number;
  p90: number;
  p99: number;
}

/** The sampler's figures, or null when it took no sample (its minimum is then meaningless). */
function delayFigures(h: ReturnType<typeof monitorEventLoopDelay>): DelayFigures | null {
  if (h.count === 0) return null;
  return {
    min: h.min,
    max: h.max,
    mean: h.mean,
    stddev: h.stddev,
    p50: h.percentile(50),
    p90: h.percentile(90),
    p99: h.percentile(99),
  };
}

export function registerProcessMetrics(registry: Registry, prefix: string): void {
  const add = (name: string, help: string, read: () => Reading | Promise<Reading>) =>
    registry.register(new ReadMetric(`${prefix}${name}`, help, read));
  const counter = (name: string, help: string, read: () => number) =>
    registry.register(new ReadMetric(`${prefix}${name}`, help, read, "counter"));

  counter(
    "process_cpu_user_seconds_total",
    "Total user CPU time spent in seconds.",
    () => process.cpuUsage().user / 1e6,
  );
  counter(
    "process_cpu_system_seconds_total",
    "Total system CPU time spent in seconds.",
    () => process.cpuUsage().system / 1e6,
  );
  counter("process_cpu_seconds_total", "Total user and system CPU time spent in seconds.", () => {
    const { user, system } = process.cpuUsage();
    return (user + system) / 1e6;
  });
  const startedAt = Math.round(Date.now() / 1000 - process.uptime());
  add(
    "process_start_time_seconds",
    "Start time of the process since unix epoch in seconds.",
    () => startedAt,
  );
  add("process_resident_memory_bytes", "Resident memory size in bytes.", () =>
    process.memoryUsage.rss(),
  );
  add("process_virtual_memory_bytes", "Virtual memory size in bytes.", () =>
    procNumber("/proc/self/status", /^VmSize:\s*(\d+) kB$/m, 1024),
  );
  add("process_open_fds", "Number of open file descriptors.", openFds);
  add("process_max_fds", "Maximum number of open file descriptors.", () =>
    procNumber("/proc/self/limits", /^Max open files\s+(\d+)/m),
  );

  add("nodejs_eventloop_lag_seconds", "Lag of event loop in seconds.", lagNow);
  // Delays sampled every 10 ms between two scrapes, then forgotten. The
  // seven figures of a scrape come from one snapshot, whichever is read
  // first, so they always describe the same interval.
  const delays = monitorEventLoopDelay({ resolution: 10 });
  delays.enable();
  let snapshot: DelayFigures | null | undefined;
  const figures = (): DelayFigures | null => {
    if (snapshot === undefined) {
      snapshot = delayFigures(delays);
      delays.reset();
      queueMicrotask(() => {
        snapshot = undefined;
      });
    }
    return snapshot;
  };
  const delay = (name: string, help: string, pick: (f: DelayFigures) => number) =>
    add(name, help, () => {
      const f = figures();
      return f === null ? undefined : pick(f) / 1e9;
    });
  delay("nodejs_eventloop_lag_min_seconds", "The minimum recorded event loop delay.", (f) => f.min);
  delay("nodejs_eventloop_lag_max_seconds", "The maximum recorded event loop delay.", (f) => f.max);
  delay(
    "nodejs_eventloop_lag_mean_seconds",
    "The mean of the recorded event loop delays.",
    (f) => f.mean,
  );
  delay(
    "nodejs_eventloop_lag_stddev_seconds",
    "The standard deviation of the recorded event loop delays.",
    (f) => f.stddev,
  );
  delay(
    "nodejs_eventloop_lag_p50_seconds",
    "The 50th percentile of the recorded event loop delays.",
    (f) => f.p50,
  );
  delay(
    "nodejs_eventloop_lag_p90_seconds",
    "The 90th percentile of the recorded event loop delays.",
    (f) => f.p90,
  );
  delay(
    "nodejs_eventloop_lag_p99_seconds",
    "The 99th percentile of the recorded event loop delays.",
    (f) => f.p99,
  );

  add(
    "nodejs_heap_size_total_bytes",
    "Process heap size from Node.js in bytes.",
    () => process.memoryUsage().heapTotal,
  );
  add(
    "nodejs_heap_size_used_bytes",
    "Process heap size used from Node.js in bytes.",
    () => process.memoryUsage().heapUsed,
  );
  add(
    "nodejs_external_memory_bytes",
    "Node.js external memory size in bytes.",
    () => process.memoryUsage().external,
  );
}
