import type { Logger } from "../log.ts";
import type { Storage } from "../storage/types.ts";
import { bucketStartOf, WINDOW_MS, windowFloor } from "../time/buckets.ts";
import { SingleFlight } from "../util/single-flight.ts";
import { withTimeout } from "../util/timeout.ts";

// Usage history retention: 5-minute buckets older than USAGE_RETENTION_DAYS
// are deleted in the background, a chunk at a time, so that no statement
// holds locks for long and requests run between chunks. Lifetime totals live
// on the key and are never touched.

const DAY_MS = 24 * 60 * 60 * 1000;

export const RETENTION_DEFAULTS = {
  intervalMs: 60 * 60 * 1000,
  /** Shortly after start, not at once: start-up (journal replay, first flushes) goes first. */
  firstRunMs: 60 * 1000,
  /** Buckets per statement: a few milliseconds of work in either database. */
  chunk: 5000,
  /** How long `stop` waits for a run in progress before giving up on it. */
  stopWaitMs: 5000,
};

/**
 * Buckets that started before the returned instant are history past keeping.
 * Floored to a bucket start, so a run deletes whole buckets only. Throws when
 * that would reach into the quota window: admission counts every bucket of
 * the last 5 hours, and pruning one of them would hand its tokens back.
 */
export function retentionCutoff(now: number, retentionDays: number): number {
  const cutoff = bucketStartOf(now - retentionDays * DAY_MS);
  if (!(cutoff <= windowFloor(now))) {
    throw new RangeError(
      `usage retention of ${retentionDays} days would prune buckets inside the ${WINDOW_MS / 3_600_000}-hour quota window`,
    );
  }
  return cutoff;
}

export interface RetentionDeps {
  storage: Pick<Storage, "pruneUsage"> & Partial<Pick<Storage, "pruneAudit" | "pruneModelUsage">>;
  clock: () => number;
  log: Pick<Logger, "info" | "warn" | "debug">;
  retentionDays: number;
  /** AUDIT_RETENTION_DAYS: audit entries older than this are pruned too; undefined = keep all. */
  auditRetentionDays?: number;
  /** False while the database is known to be out: the run is skipped, the health monitor has it. */
  healthy: () => boolean;
  intervalMs?: number;
  firstRunMs?: number;
  chunk?: number;
  stopWaitMs?: number;
  /** What schedules the runs; tests pass their own to step through them. */
  timer?: RetentionTimer;
}

export interface RetentionTimer {
  set(run: () => void, ms: number): unknown;
  clear(handle: unknown): void;
}

const realTimer: RetentionTimer = {
  set(run, ms) {
    const handle = setTimeout(run, ms);
    // Never what keeps the process alive.
    handle.unref?.();
    return handle;
  },
  clear: (handle) => clearTimeout(handle as ReturnType<typeof setTimeout>),
};

export type PruneOutcome =
  | { ran: true; deleted: number; cutoff: number }
  | { ran: false; reason: "degraded" | "stopped" | "failed" };

/** Lets timers and I/O (incoming requests) run before the next chunk. */
const yieldToEventLoop = () => new Promise<void>((resolve) => setImmediate(resolve));

export class UsagePruner {
  private pending: unknown;
  private readonly runs = new SingleFlight<PruneOutcome>();
  private stopped = false;
  private readonly options: typeof RETENTION_DEFAULTS;
  private readonly timer: RetentionTimer;

  constructor(private readonly deps: RetentionDeps) {
    this.options = {
      intervalMs: deps.intervalMs ?? RETENTION_DEFAULTS.intervalMs,
      firstRunMs: deps.firstRunMs ?? RETENTION_DEFAULTS.firstRunMs,
      chunk: deps.chunk ?? RETENTION_DEFAULTS.chunk,
      stopWaitMs: deps.stopWaitMs ?? RETENTION_DEFAULTS.stopWaitMs,
    };
    this.timer = deps.timer ?? realTimer;
    // Refuse a bad setting at start-up rather than at the first run.
    retentionCutoff(deps.clock(), deps.retentionDays);
  }

  /** Runs once after `firstRunMs`, then every `intervalMs` after each run ends. */
  start(): void {
    this.schedule(this.options.firstRunMs);
  }

  /** Stops the timer and waits (bounded) for a run in progress, which ends after its current chunk. */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.pending !== undefined) this.timer.clear(this.pending);
    const run = this.runs.running;
    if (!run) return;
    const timedOut = await withTimeout(run, this.options.stopWaitMs).then(
      () => false,
      () => true,
    );
    if (timedOut) this.deps.log.warn("usage pruning still running at shutdown; left behind");
  }

  /** One pass: deletes every bucket past the cutoff, a chunk at a time. Never throws. */
  runOnce(): Promise<PruneOutcome> {
    return this.runs.run(() => this.prune());
  }

  private schedule(delayMs: number): void {
    if (this.stopped) return;
    this.pending = this.timer.set(async () => {
      this.pending = undefined;
      // runOnce catches what the database throws; this catches anything else,
      // so a bug here can never surface as an unhandled rejection.
      await this.runOnce().catch((err: unknown) =>
        this.deps.log.warn({ err: (err as Error).message }, "usage pruning failed"),
      );
      this.schedule(this.options.intervalMs);
    }, delayMs);
  }

  /** Audit entries past AUDIT_RETENTION_DAYS, a chunk at a time; nothing when unset. */
  private async pruneAudit(now: number): Promise<number> {
    const { storage, auditRetentionDays, healthy, log } = this.deps;
    if (auditRetentionDays === undefined || !storage.pruneAudit) return 0;
    const before = now - auditRetentionDays * 86_400_000;
    let deleted = 0;
    for (;;) {
      const n = await storage.pruneAudit(before, this.options.chunk);
      deleted += n;
      if (n < this.options.chunk || this.stopped || !healthy()) break;
      await yieldToEventLoop();
    }
    if (deleted > 0) {
      log.info({ deleted, before: new Date(before).toISOString() }, "audit log pruned");
    }
    return deleted;
  }

  private async prune(): Promise<PruneOutcome> {
    const { storage, clock, log, retentionDays, healthy } = this.deps;
    const { chunk } = this.options;
    if (this.stopped) return { ran: false, reason: "stopped" };
    if (!healthy()) {
      log.debug("database degraded; usage pruning skipped this time");
      return { ran: false, reason: "degraded" };
    }
    const started = clock();
    let cutoff = 0;
    let deleted = 0;
    try {
      cutoff = retentionCutoff(started, retentionDays);
      for (;;) {
        const n = await storage.pruneUsage(cutoff, chunk);
        deleted += n;
        if (n < chunk || this.stopped || !healthy()) break;
        await yieldToEventLoop();
      }
      // The hourly per-model history, by the same cutoff.
      for (;;) {
        if (!storage.pruneModelUsage || this.stopped || !healthy()) break;
        const n = await storage.pruneModelUsage(cutoff, chunk);
        deleted += n;
        if (n < chunk) break;
        await yieldToEventLoop();
      }
      deleted += await this.pruneAudit(started);
    } catch (err) {
      log.warn(
        { err: (err as Error).message, deleted },
        "usage pruning failed; it is tried again at the next run",
      );
      return { ran: false, reason: "failed" };
    }
    const fields = {
      deleted,
      before: new Date(cutoff).toISOString(),
      retentionDays,
      ms: clock() - started,
    };
    if (deleted > 0) log.info(fields, "usage history pruned");
    else log.debug(fields, "usage history: nothing to prune");
    return { ran: true, deleted, cutoff };
  }
}
