import type { Context } from "hono";
import type { UsageLedger } from "../accounting/ledger.ts";
import type { KeyCache } from "../keys/cache.ts";
import type { BackupScheduler } from "../ops/backup/scheduler.ts";
import type { StorageHealth } from "../storage/health.ts";
import type { Storage } from "../storage/types.ts";
import { withTimeout } from "../util/timeout.ts";

export interface ReadyDeps {
  storage: Storage;
  health: StorageHealth;
  ledger: UsageLedger;
  keys: KeyCache;
  accepting: () => boolean;
  unknownKeysDuringOutage: "reject" | "allow";
  /** False without UPSTREAM_API_KEY: every proxied call would get 503. */
  upstreamConfigured: boolean;
  backups?: () => BackupScheduler | undefined;
}

/**
 * Readiness, for load balancers: `ok`; `degraded` while the database is out
 * but known keys are served from memory (still 200: sending traffic here is
 * better than nowhere); `down` (503) only when requests cannot be served —
 * shutting down, no upstream key to forward with, or the database out with
 * no key known to serve from.
 */
export function readyHandler(deps: ReadyDeps) {
  return async function ready(c: Context): Promise<Response> {
    // A fresh ping, but no long wait for it: with the pool busy, the last
    // known state answers within a probe's timeout.
    await withTimeout(deps.health.check(), 250).catch(() => {});
    const h = deps.health.snapshot();
    const canServeFromMemory = deps.keys.knownKeys > 0 || deps.unknownKeysDuringOutage === "allow";
    const status =
      !deps.accepting() || !deps.upstreamConfigured
        ? "down"
        : h.reachable
          ? deps.ledger.backlog > 0 && deps.ledger.lastFlushError
            ? "degraded"
            : "ok"
          : canServeFromMemory
            ? "degraded"
            : "down";
    const body = {
      status,
      timestamp: new Date().toISOString(),
      accepting: deps.accepting(),
      upstream: {
        configured: deps.upstreamConfigured,
        error: deps.upstreamConfigured
          ? null
          : "UPSTREAM_API_KEY is not set: every proxied call gets 503",
      },
      storage: {
        kind: deps.storage.kind,
        reachable: h.reachable,
        latency_ms: h.reachable ? h.latencyMs : null,
        error: h.lastError,
        degraded_since: h.degradedSince === null ? null : new Date(h.degradedSince).toISOString(),
      },
      usage: {
        unsynced_events: deps.ledger.backlog,
        last_flush_error: deps.ledger.lastFlushError ?? null,
      },
      keys_in_memory: deps.keys.knownKeys,
      // A failed backup does not stop serving, so it shows here, not in `status`.
      backup: backupDetails(deps.backups?.()),
    };
    return c.json(body, status === "down" ? 503 : 200, { "cache-control": "no-store" });
  };
}

function backupDetails(scheduler: BackupScheduler | undefined) {
  if (!scheduler) return { scheduled: false };
  const next = scheduler.nextRun();
  return {
    scheduled: true,
    next_run: next ? next.toISOString() : null,
    last: scheduler.lastOutcome() ?? null,
  };
}
