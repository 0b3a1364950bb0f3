import { Cron } from "croner";
import type { Config } from "../../config.ts";
import type { Logger } from "../../log.ts";
import { type HeldLock, tryBackupLock } from "../../storage/postgres/backup-lock.ts";
import { SingleFlight } from "../../util/single-flight.ts";
import {
  type CreateBackupOptions,
  type CreatedBackup,
  type DatabaseTarget,
  sourceOf,
} from "./create.ts";
import { messageOf } from "./errors.ts";
import { pruneBackups } from "./retention.ts";
import { createBackupInWorker } from "./worker.ts";

/** What the last scheduled run did; kept in memory for health and metrics. */
export type BackupRunOutcome =
  | {
      status: "ok";
      startedAt: string;
      durationMs: number;
      file: string;
      bytes: number;
      keys: number;
      pruned: string[];
      warnings: string[];
    }
  | { status: "failed"; startedAt: string; durationMs: number; error: string }
  | { status: "skipped"; startedAt: string; reason: string };

export interface BackupScheduler {
  lastOutcome(): BackupRunOutcome | undefined;
  nextRun(): Date | null;
  /** One run now, as the schedule would do it. */
  runNow(): Promise<BackupRunOutcome>;
  /** No further runs; waits for one in progress. */
  stop(): Promise<void>;
}

export interface SchedulerOptions {
  target: DatabaseTarget;
  schedule: string;
  dir: string;
  retain: number;
  compress: boolean;
  log: Logger;
  /** Injected by tests; by default a worker thread runs the backup. */
  create?: (options: CreateBackupOptions) => Promise<CreatedBackup>;
  lock?: (url: string) => Promise<HeldLock | null>;
}

/**
 * How long an instance keeps the backup lock after its run: to the end of
 * the minute it fired in, so another instance firing in the same minute (its
 * clock a little off, or simply later to start) finds it taken and skips, but
 * never into this instance's own next run.
 */
export function holdLockUntil(firedAt: number, nextRun: number | null): number {
  const minute = firedAt + 60_000;
  return nextRun === null ? minute : Math.min(minute, nextRun - 500);
}

/**
 * Runs backups on a cron schedule (croner). Each run is logged with its
 * outcome; a failure is logged and kept, never thrown: the gateway carries on.
 * On PostgreSQL an advisory lock makes one instance back up per slot.
 */
export function startBackupScheduler(options: SchedulerOptions): BackupScheduler {
  const { log, target } = options;
  const create = options.create ?? createBackupInWorker;
  const lock = options.lock ?? tryBackupLock;
  const source = sourceOf(target);
  let last: BackupRunOutcome | undefined;
  const runs = new SingleFlight<BackupRunOutcome>();
  const held = new Set<{ lock: HeldLock; timer: ReturnType<typeof setTimeout> }>();

  const job = new Cron(
    options.schedule,
    {
      protect: () => log.warn("scheduled backup skipped: the previous one is still running"),
      unref: true,
    },
    async () => {
      await runNow();
    },
  );

  function keep(l: HeldLock, firedAt: number): void {
    const wait = holdLockUntil(firedAt, job.nextRun()?.getTime() ?? null) - Date.now();
    const entry = {
      lock: l,
      timer: setTimeout(
        () => {
          held.delete(entry);
          void l.release().catch(() => {});
        },
        Math.max(0, wait),
      ),
    };
    entry.timer.unref?.();
    held.add(entry);
  }

  async function once(): Promise<BackupRunOutcome> {
    const firedAt = Date.now();
    const startedAt = new Date(firedAt).toISOString();
    let l: HeldLock | null = null;
    try {
      if (target.type === "postgres") {
        l = await lock(target.url);
        if (!l) {
          return {
            status: "skipped",
            startedAt,
            reason: "another instance holds the backup lock and is backing up this database",
          };
        }
      }
      const made = await create({
        target,
        dir: options.dir,
        compress: options.compress,
        format: "native",
        origin: "scheduled",
      });
      const warnings = [...made.warnings];
      let pruned: string[] = [];
      try {
        pruned = pruneBackups(options.dir, options.retain, source);
      } catch (err) {
        warnings.push(`retention failed: ${messageOf(err)}`);
      }
      return {
        status: "ok",
        startedAt,
        durationMs: Date.now() - firedAt,
        file: made.path,
        bytes: made.manifest.payload.bytes,
        keys: made.manifest.counts.keys,
        pruned,
        warnings,
      };
    } catch (err) {
      return {
        status: "failed",
        startedAt,
        durationMs: Date.now() - firedAt,
        error: messageOf(err),
      };
    } finally {
      if (l) keep(l, firedAt);
    }
  }

  function report(o: BackupRunOutcome): void {
    if (o.status === "ok") log.info({ backup: o }, "scheduled backup written");
    else if (o.status === "skipped") log.info({ backup: o }, "scheduled backup skipped");
    else log.error({ backup: o }, "scheduled backup failed");
  }

  async function runNow(): Promise<BackupRunOutcome> {
    return runs.run(() =>
      once().then((o) => {
        last = o;
        report(o);
        return o;
      }),
    );
  }

  log.info(
    { schedule: options.schedule, dir: options.dir, retain: options.retain, next: job.nextRun() },
    "scheduled backups on",
  );
  return {
    lastOutcome: () => last,
    nextRun: () => job.nextRun(),
    runNow,
    async stop() {
      job.stop();
      await runs.running?.catch(() => {});
      for (const h of held) {
        clearTimeout(h.timer);
        await h.lock.release().catch(() => {});
      }
      held.clear();
    },
  };
}

/** The scheduler the configuration asks for (BACKUP_ENABLED), or undefined. */
export function scheduledBackups(config: Config, log: Logger): BackupScheduler | undefined {
  if (!config.backup.enabled) return undefined;
  const s = config.storage;
  if (s.type === "file") {
    log.warn(
      "BACKUP_ENABLED is set but the legacy file backend is not backed up by Tollgate; copy its file instead",
    );
    return undefined;
  }
  return startBackupScheduler({
    target: s,
    schedule: config.backup.schedule,
    dir: config.backup.dir,
    retain: config.backup.retain,
    compress: config.backup.compress,
    log,
  });
}
