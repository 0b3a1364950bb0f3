import type { PlanWindowFigures } from "../quota/plan.ts";
import { Registry } from "./exposition.ts";
import { LocalCounter, LocalGauge, LocalHistogram, type Reading, ReadMetric } from "./local.ts";
import { registerProcessMetrics } from "./process.ts";

/** Seconds buckets from 5 ms to 10 min: upstream calls range from a cache hit to a long thought. */
const UPSTREAM_BUCKETS = [
  0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600,
];
/** Storage round trips: 0.1 ms to 5 s. */
const STORAGE_BUCKETS = [0.0001, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1, 5];

export interface MetricsSources {
  /** Usage events not yet in the database. */
  backlog: () => number;
  /** 1 while the database answers, 0 during an outage. */
  storageUp: () => number;
  /** Keys known to this instance (served from memory during an outage). */
  keysInMemory: () => number;
  /** Storage operations under way right now (a busy or exhausted pool shows here). */
  storageInflight: () => number;
  poolMax: number;
  /** The upstream plan against the keys handed out (read from storage, cached briefly). */
  plan?: () => Promise<PlanWindowFigures[] | undefined>;
  /** The backup scheduler, when scheduled backups are on. */
  backups?: () => { lastOutcome(): { status: string; startedAt: string } | undefined } | undefined;
}

/**
 * The gateway's Prometheus metrics. Labels are bounded: routes are the known
 * route names, never raw paths, and keys are never a label (a key per series
 * would grow without bound and put key prefixes in a scrape).
 */
export function createMetrics(sources: MetricsSources) {
  const registry = new Registry();
  registerProcessMetrics(registry, "tollgate_");

  const metrics = {
    registry,
    requests: new LocalCounter(
      "tollgate_http_requests_total",
      "HTTP requests answered, by route, status and dialect",
      ["route", "status", "dialect"] as const,
    ).register(registry),
    upstreamDuration: new LocalHistogram(
      "tollgate_upstream_duration_seconds",
      "Time from sending a request upstream to the end of its response",
      ["dialect", "stream"] as const,
      UPSTREAM_BUCKETS,
    ).register(registry),
    upstreamTtfb: new LocalHistogram(
      "tollgate_upstream_ttfb_seconds",
      "Time from sending a request upstream to its response headers",
      ["dialect"] as const,
      UPSTREAM_BUCKETS,
    ).register(registry),
    upstreamErrors: new LocalCounter(
      "tollgate_upstream_errors_total",
      "Upstream calls that failed before an answer (unreachable, timeout)",
      ["dialect", "reason"] as const,
    ).register(registry),
    tokens: new LocalCounter("tollgate_tokens_charged_total", "Tokens charged to keys", [
      "dialect",
    ] as const).register(registry),
    estimatedStreams: new LocalCounter(
      "tollgate_streams_estimated_total",
      "Streams that ended without reported usage and were charged an estimate",
      ["dialect", "reason"] as const,
    ).register(registry),
    quotaRejections: new LocalCounter(
      "tollgate_quota_rejections_total",
      "Requests refused with 429 because the key's 5-hour quota was spent",
      ["dialect"] as const,
    ).register(registry),
    concurrencyRejections: new LocalCounter(
      "tollgate_concurrency_rejections_total",
      "Requests refused with 429 because their key already had as many requests in flight as it may",
      ["dialect"] as const,
    ).register(registry),
    upstreamQueueDepth: new LocalGauge(
      "tollgate_upstream_queue_depth",
      "Requests waiting for an upstream slot (UPSTREAM_MAX_CONCURRENCY), on this instance",
    ).register(registry),
    upstreamQueueWait: new LocalHistogram(
      "tollgate_upstream_queue_wait_seconds",
      "Time requests waited for an upstream slot, by outcome: admitted, timeout, aborted (client left)",
      ["outcome"] as const,
      UPSTREAM_BUCKETS,
    ).register(registry),
    upstreamQueueTimeouts: new LocalCounter(
      "tollgate_upstream_queue_timeouts_total",
      "Requests refused with 429 after waiting UPSTREAM_QUEUE_TIMEOUT_MS for an upstream slot",
      ["dialect"] as const,
    ).register(registry),
    keyCache: new LocalCounter(
      "tollgate_key_cache_lookups_total",
      "Key lookups by outcome: hit (memory), miss (database), stale (served from memory while the database was slow or out)",
      ["result"] as const,
    ).register(registry),
    keyAuthFailures: new LocalCounter(
      "tollgate_key_auth_failures_total",
      "Failed API key authentications: unknown (no such key), malformed (cannot be a key), refused (address over its failed-attempt limit, not looked up)",
      ["reason"] as const,
    ).register(registry),
    blockedPaths: new LocalCounter(
      "tollgate_blocked_requests_total",
      "Requests answered by the endpoint policy and never forwarded: not_found (no such endpoint here) or malformed (refused path spelling)",
      ["reason"] as const,
    ).register(registry),
    storageDuration: new LocalHistogram(
      "tollgate_storage_operation_seconds",
      "Storage operations on the request and accounting paths",
      ["op"] as const,
      STORAGE_BUCKETS,
    ).register(registry),
    storageErrors: new LocalCounter(
      "tollgate_storage_errors_total",
      "Storage operations that failed",
      ["op"] as const,
    ).register(registry),
  };

  /** A gauge read from its source at scrape time; `undefined` leaves it out. */
  const gauge = (name: string, help: string, read: () => Reading | Promise<Reading>) =>
    registry.register(new ReadMetric(name, help, read));

  gauge(
    "tollgate_usage_backlog_events",
    "Usage events charged but not yet written to the database (kept in the journal)",
    sources.backlog,
  );
  gauge(
    "tollgate_storage_up",
    "1 while the database answers, 0 while the gateway serves from memory",
    sources.storageUp,
  );
  gauge("tollgate_keys_in_memory", "Keys known to this instance", sources.keysInMemory);
  gauge(
    "tollgate_storage_inflight_operations",
    "Storage operations under way; near tollgate_storage_pool_max means the pool is exhausted",
    sources.storageInflight,
  );
  gauge(
    "tollgate_storage_pool_max",
    "Database connections this instance may open (1 for SQLite)",
    () => sources.poolMax,
  );
  // One read serves the three plan gauges of a scrape.
  let planRead: Promise<PlanWindowFigures[] | undefined> | undefined;
  const planFigures = () => {
    if (!planRead) {
      planRead = (sources.plan?.() ?? Promise.resolve(undefined)).catch(() => undefined);
      void planRead.finally(() => {
        planRead = undefined;
      });
    }
    return planRead;
  };
  const planGauge = (name: string, help: string, pick: (w: PlanWindowFigures) => number | null) =>
    gauge(name, help, async () => {
      const values = [];
      for (const w of (await planFigures()) ?? []) {
        const value = pick(w);
        if (value !== null) values.push({ labels: { window: w.window }, value });
      }
      return values;
    });
  if (sources.plan) {
    planGauge(
      "tollgate_plan_capacity_units",
      "What the upstream plan delivers per window (UPSTREAM_PLAN_5H, UPSTREAM_PLAN_WEEKLY), in the units quotas count; absent when not declared",
      (w) => w.capacity,
    );
    planGauge(
      "tollgate_plan_allowed_units",
      "Sum of what the active keys may use per window; above the capacity, the plan is oversubscribed",
      (w) => w.allowed,
    );
    planGauge(
      "tollgate_plan_used_units",
      "Used across all keys in the window ending now (the same figure on every instance)",
      (w) => w.used,
    );
  }

  const lastBackup = () => sources.backups?.()?.lastOutcome();
  // A skipped run (another instance holds the backup lock, or the previous
  // run is still going) says nothing new: the last verdict stands.
  let lastVerdict: number | undefined;
  gauge(
    "tollgate_backup_last_ok",
    "1 if the last scheduled backup succeeded, 0 if it failed (absent until one has run)",
    () => {
      const last = lastBackup();
      if (last && last.status !== "skipped") lastVerdict = Number(last.status === "ok");
      return lastVerdict;
    },
  );
  gauge(
    "tollgate_backup_last_run_timestamp_seconds",
    "When the last scheduled backup started",
    () => {
      const last = lastBackup();
      return last ? Date.parse(last.startedAt) / 1000 : undefined;
    },
  );

  return metrics;
}

export type Metrics = ReturnType<typeof createMetrics>;
