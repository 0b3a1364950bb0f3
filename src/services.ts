import { claimInstance, type InstanceClaim } from "./accounting/instance.ts";
import { Journal } from "./accounting/journal.ts";
import { UsageLedger } from "./accounting/ledger.ts";
import { UsagePruner } from "./accounting/retention.ts";
import { planState } from "./admin/plan.ts";
import type { Config } from "./config.ts";
import { defaultKeyCacheOptions, KeyCache } from "./keys/cache.ts";
import type { Logger } from "./log.ts";
import { instrumentStorage } from "./metrics/instrumented-storage.ts";
import { createMetrics, type Metrics } from "./metrics/registry.ts";
import type { BackupScheduler } from "./ops/backup/scheduler.ts";
import { UsageView } from "./quota/usage-view.ts";
import { StorageHealth, type StorageHealthOptions } from "./storage/health.ts";
import type { Storage } from "./storage/types.ts";

export interface ServiceDeps {
  /** An open, migrated database; its operations are timed into the metrics. */
  storage: Storage;
  clock: () => number;
  log: Logger;
  /** How the database is probed and reconnected. */
  health: StorageHealthOptions;
  /** How often other instances' usage is re-read. */
  usageRefreshMs: number;
  /** The backup scheduler, once there is one (for metrics). */
  backups?: () => BackupScheduler | undefined;
}

/** Everything a gateway runs on, wired once, for the server and the tests alike. */
export interface Services {
  storage: Storage;
  metrics: Metrics;
  instance: InstanceClaim;
  journal: Journal;
  health: StorageHealth;
  ledger: UsageLedger;
  usage: UsageView;
  keys: KeyCache;
  pruner: UsagePruner;
}

/**
 * storage -> metrics -> journal replay -> health, ledger, usage, keys.
 * Nothing is started here (no timers, no probes): the caller starts what it
 * runs. The metrics' gauges read the services below only when scraped, which
 * cannot happen before this returns.
 */
export async function buildServices(config: Config, deps: ServiceDeps): Promise<Services> {
  const { clock, log } = deps;
  const inflight = { n: 0 };
  const metrics = createMetrics({
    backlog: () => ledger.backlog,
    storageUp: () => (health.degraded ? 0 : 1),
    keysInMemory: () => keys.knownKeys,
    storageInflight: () => inflight.n,
    backups: deps.backups,
    plan: async () => planState(storage, clock(), config.plan),
    poolMax: deps.storage.kind === "postgres" ? config.database.poolMax : 1,
  });
  const storage = instrumentStorage(deps.storage, metrics, inflight);
  const instance = claimInstance(config.journalDir);
  const journal = Journal.open(config.journalDir, instance.id);
  const health = new StorageHealth(storage, log, deps.health, clock);
  // The usage view hears of every flush; it exists only once the ledger has
  // replayed the journal, so the first flushes (the replay's) reach it through here.
  const flushed: { view?: UsageView } = {};
  const ledger = await UsageLedger.open({
    storage,
    journal,
    instanceId: instance.id,
    clock,
    log,
    onFlushed: (keys, n) => {
      flushed.view?.onFlushed(keys, n);
      health.reportSuccess();
    },
    onFlushError: (err) => health.reportFailure(err),
    // While the database is out the backlog waits in the journal; the
    // health monitor reconnects and flushes it once.
    canFlush: () => !health.degraded,
  });
  health.onRecovered(() => void ledger.flush());
  const usage = new UsageView(storage, ledger, clock, deps.usageRefreshMs, health);
  flushed.view = usage;
  const keys = new KeyCache(
    storage,
    clock,
    { ...defaultKeyCacheOptions, unknownDuringOutage: config.unknownKeysDuringOutage },
    health,
    (result) => metrics.keyCache.inc({ result }),
    () => ledger.flushNo,
  );
  // Usage history past USAGE_RETENTION_DAYS, deleted hourly in small chunks.
  const pruner = new UsagePruner({
    storage,
    clock,
    log,
    retentionDays: config.usageRetentionDays,
    auditRetentionDays: config.auditRetentionDays,
    healthy: () => !health.degraded,
  });
  return { storage, metrics, instance, journal, health, ledger, usage, keys, pruner };
}
