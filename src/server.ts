import { existsSync } from "node:fs";
import type { Server } from "bun";
import { createApp } from "./app.ts";
import type { Config } from "./config.ts";
import type { Logger } from "./log.ts";
import type { BackupScheduler } from "./ops/backup/scheduler.ts";
import { RUNNING_FROM } from "./package-root.ts";
import { codingPlanEndpoint, sharedPlanNotice, UPSTREAM_TERMS_DOC } from "./proxy/plan-terms.ts";
import { buildServices } from "./services.ts";
import { describeStorage, openStorage } from "./storage/open.ts";
import type { Storage } from "./storage/types.ts";
import { withTimeout } from "./util/timeout.ts";

/** Probing the database: every 2 s while it answers; reconnecting with backoff from 250 ms to 5 s while not. */
const HEALTH_OPTIONS = { probeMs: 2000, backoffMs: 250, maxBackoffMs: 5000, pingTimeoutMs: 2000 };

/**
 * Serves on the configured address, which this process must hold alone. Out
 * of development mode the runtime would otherwise share the port with any
 * other process that asks (SO_REUSEPORT): a second gateway started on a port
 * in use, with keys, quotas and a journal of its own, would silently take
 * part of the first one's connections instead of failing.
 */
function listen(
  config: Pick<Config, "host" | "port" | "idleTimeoutSeconds">,
  fetch: (req: Request, server: Server<undefined>) => Response | Promise<Response>,
): Server<undefined> {
  try {
    return Bun.serve({
      port: config.port,
      hostname: config.host,
      reusePort: false,
      fetch,
      development: false,
      // Idle keep-alive connections go; proxied calls, which can stay quiet for
      // minutes while a model thinks, are exempt (see http/idle-exemption.ts).
      idleTimeout: config.idleTimeoutSeconds,
      // Our own limit answers 413 in the route's dialect; Bun's must not fire first.
      maxRequestBodySize: Number.MAX_SAFE_INTEGER,
    });
  } catch (err) {
    if ((err as { code?: unknown }).code !== "EADDRINUSE") throw err;
    throw new Error(
      `cannot listen on ${config.host}:${config.port}: the port is in use by another process (another gateway?); stop that one or choose another PORT`,
    );
  }
}

/** SQLite has one writer in practice: another writer's usage is re-read at most every second. */
const SQLITE_USAGE_REFRESH_MS = 1000;

export interface Gateway {
  server: Server<undefined>;
  url: string;
  /** Stop accepting, let in-flight requests finish (bounded), flush usage, close. */
  stop(): Promise<void>;
  /**
   * Leave now (the operator insisted): whatever is still running is charged
   * what is known so far, and pending usage gets a brief chance to reach the
   * database. The journal holds every charge either way.
   */
  exitNow(): Promise<void>;
}

/** How long leaving at once waits for the database to take pending usage. */
const EXIT_NOW_FLUSH_MS = 2000;

/** config -> storage -> services (journal replay) -> app -> serve. */
export async function startGateway(config: Config, log: Logger): Promise<Gateway> {
  const clock = Date.now;
  const opened = await openStorage(config, {
    onRetry: (attempt, waitMs, reason) =>
      log.warn({ attempt, waitMs, reason }, "database not reachable yet; retrying"),
  });
  await migrationHint(config, opened, log);
  let backups: BackupScheduler | undefined;
  const { storage, metrics, instance, journal, health, ledger, usage, keys, pruner } =
    await buildServices(config, {
      storage: opened,
      clock,
      log,
      health: HEALTH_OPTIONS,
      usageRefreshMs: opened.kind === "postgres" ? config.usageSyncMs : SQLITE_USAGE_REFRESH_MS,
      backups: () => backups,
    });
  health.start();
  // Recently used keys' usage and records re-read in one query per interval
  // each, off the request path.
  usage.start();
  keys.start();
  ledger.startTimer(config.flushIntervalMs);
  pruner.start();
  const sweeper = setInterval(() => usage.sweep(), 60_000);
  sweeper.unref();

  // Other instances' key changes, at once; the cache's TTL is the fallback.
  const onKeyChanged = (keyId: string) => keys.invalidate(keyId);
  let unwatch = await storage.watchKeyChanges?.(onKeyChanged);
  // After an outage, listen afresh: a subscription that failed to come back
  // with the connection would leave only the cache's one-second bound.
  health.onRecovered(() => {
    const old = unwatch;
    void (async () => {
      await withTimeout(Promise.resolve(old?.()), 1000).catch(() => {});
      unwatch = await storage.watchKeyChanges?.(onKeyChanged).catch((err: unknown) => {
        log.warn({ err: (err as Error).message }, "could not listen for key changes again");
        return undefined;
      });
    })();
  });
  let accepting = true;
  const app = createApp({
    config,
    storage,
    keys,
    usage,
    ledger,
    clock,
    log,
    health,
    metrics,
    accepting: () => accepting,
    backups: () => backups,
  });
  const server = listen(config, app.fetch);
  const url = `http://${config.host === "0.0.0.0" ? "127.0.0.1" : config.host}:${server.port}`;
  log.info(
    {
      url,
      storage: describeStorage(config),
      instance: instance.id,
      upstreamKey: Boolean(config.upstreamApiKey),
      code: RUNNING_FROM,
    },
    "tollgate listening",
  );
  if (!config.upstreamApiKey) {
    log.warn("UPSTREAM_API_KEY is not set: health and stats answer, proxied calls get 503");
  }
  await sharedPlanHint(config, storage, clock(), log);
  // Scheduled backups (BACKUP_ENABLED): a failed run is logged, never fatal.
  // The backup code (croner, pg_dump, the logical export) is loaded only then.
  if (config.backup.enabled) {
    backups = (await import("./ops/backup/scheduler.ts")).scheduledBackups(config, log);
  }

  let stopping: Promise<void> | undefined;
  const stop = () => {
    stopping ??= (async () => {
      accepting = false;
      clearInterval(sweeper);
      usage.stop();
      keys.stop();
      await backups?.stop();
      // Ends after its current chunk (bounded wait), well before storage.close().
      await pruner.stop();
      // One budget for the whole shutdown: requests and streams, then the
      // charges of whatever is still running when it runs out.
      const deadline = Date.now() + config.shutdownTimeoutMs;
      const graceful = server.stop(false);
      const bound = Bun.sleep(config.shutdownTimeoutMs).then(() => "timeout" as const);
      if ((await Promise.race([graceful, bound])) === "timeout") {
        log.warn(
          { afterMs: config.shutdownTimeoutMs },
          "shutdown bound reached; closing open connections",
        );
        await server.stop(true);
      }
      // A hung database must not hold shutdown: stop listening, but briefly.
      await withTimeout(Promise.resolve(unwatch?.()), 1000).catch(() => {});
      health.stop();
      const flushed = await ledger.close(Math.max(0, deadline - Date.now()));
      if (!flushed)
        log.error(
          { journal: journal.file },
          "usage left in the journal; it is replayed on next start",
        );
      await storage.close();
      instance.release();
      log.info("tollgate stopped");
    })();
    return stopping;
  };
  const exitNow = async () => {
    accepting = false;
    ledger.chargeInFlight();
    const flushed = health.degraded
      ? false
      : await withTimeout(ledger.flush(), EXIT_NOW_FLUSH_MS).catch(() => false);
    if (!flushed) {
      log.error(
        { journal: journal.file },
        "usage left in the journal; it is replayed on next start",
      );
    }
    instance.release();
  };
  return { server, url, stop, exitNow };
}

/** A notice, not a refusal: a personal coding plan shared by several active keys. */
async function sharedPlanHint(
  config: Config,
  storage: Storage,
  now: number,
  log: Logger,
): Promise<void> {
  const urls = [config.upstreamOpenaiUrl, config.upstreamAnthropicUrl];
  if (!codingPlanEndpoint(urls)) return;
  const active = await storage
    .listKeys({ limit: 1, offset: 0, now, status: "active" })
    .catch(() => undefined);
  const notice = active ? sharedPlanNotice(urls, active.total) : undefined;
  if (notice) log.warn({ doc: UPSTREAM_TERMS_DOC }, notice);
}

/** Points an operator of the old gateway at the one command that moves them over. */
async function migrationHint(config: Config, storage: Storage, log: Logger): Promise<void> {
  const command = `STORAGE_TYPE=sqlite npx tollgate migrate --file ${config.dataFile}`;
  if (storage.kind === "file") {
    log.warn(
      { file: config.dataFile },
      `serving from the legacy key file, which keeps keys in clear and suits one instance only; move to SQLite with: ${command}`,
    );
  } else if (existsSync(config.dataFile) && (await storage.countKeys()) === 0) {
    log.warn(
      { file: config.dataFile },
      `the database has no keys but a legacy key file exists; import it with: npx tollgate migrate --file ${config.dataFile}`,
    );
  }
}
