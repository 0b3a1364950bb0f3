import { existsSync } from "node:fs";
import { dirname } from "node:path";
import { dataCountsAt } from "../../storage/postgres/counts.ts";
import { openPostgresStorage } from "../../storage/postgres/index.ts";
import { countDatabaseFile } from "../../storage/sqlite/database-file.ts";
import { openSqliteStorage } from "../../storage/sqlite/index.ts";
import { makePrivateDir } from "../../util/private-files.ts";
import { postgresSessions, sqliteGatewayPid } from "./busy.ts";
import { type CreatedBackup, createBackup, type DatabaseTarget, sourceOf } from "./create.ts";
import { BackupError, BackupRejectedError, messageOf, RestoreRefusedError } from "./errors.ts";
import { removeSqliteFiles, tempPath } from "./files.ts";
import type { BackupCounts, DatabaseKind, Manifest } from "./manifest.ts";
import { replacePostgres } from "./restore-postgres.ts";
import { prepareStaged, replaceFromStaged, stageLogical } from "./restore-sqlite.ts";
import { newerSchemaReason } from "./schema-version.ts";
import { verifyBackup } from "./verify.ts";

export interface RestoreOptions {
  file: string;
  target: DatabaseTarget;
  /** The gateway's journal folder: its lock tells whether a gateway serves a SQLite database. */
  journalDir: string;
  /** Where the pre-restore backup goes. */
  backupDir: string;
  compress: boolean;
  /** Restore although a gateway is serving the database (safe: one transaction), without asking. */
  force: boolean;
  /** Format of the pre-restore backup (default native: a SQLite copy, or pg_dump when installed). */
  preRestoreFormat?: "native" | "logical";
  /** Called once the backup is verified and before anything changes; throws to stop. */
  confirm(plan: RestorePlan): Promise<void>;
  onStep?(message: string): void;
}

export interface RestorePlan {
  manifest: Manifest;
  payload: string;
  target: string;
  /** What the database holds now (null: nothing readable there yet). */
  current: BackupCounts | null;
}

export interface RestoreResult {
  manifest: Manifest;
  payload: string;
  checks: string[];
  /** The backup of the data that was replaced: restoring it undoes this restore. */
  preRestore: CreatedBackup | null;
  restored: BackupCounts;
  checkpoints: { kept: number; fromBackup: number };
  warnings: string[];
  durationMs: number;
}

const label = (k: DatabaseKind) => (k === "sqlite" ? "SQLite" : "PostgreSQL");

/** Why a backup cannot go into a database of this kind, or null when it can. */
export function restorableInto(manifest: Manifest, kind: DatabaseKind): string | null {
  if (manifest.format !== "logical" && manifest.kind !== kind) {
    return (
      `this is a ${label(manifest.kind)} backup (${manifest.format} format) and the configured database is ${label(kind)}; ` +
      `only logical backups move between kinds (take one on the ${label(manifest.kind)} side with: tollgate backup --format logical)`
    );
  }
  return manifest.format === "logical" ? null : newerSchemaReason(manifest.kind, manifest.schema);
}

/**
 * Verify, check it fits, check nobody is serving, ask, back up what is
 * there, then replace the data in one transaction and check the result. Any
 * refusal or failure before the last step changes nothing; a failure in it
 * rolls back.
 */
export async function restoreBackup(options: RestoreOptions): Promise<RestoreResult> {
  const started = performance.now();
  const { target } = options;
  const step = (m: string) => options.onStep?.(m);
  const warnings: string[] = [];
  // Staged beside the live database: the same filesystem, room for it.
  const stageDir = target.type === "sqlite" ? dirname(target.path) : options.backupDir;
  const staged = tempPath(stageDir, "tollgate-restore.db");
  try {
    makePrivateDir(stageDir);
    step(`verifying ${options.file}`);
    const v = await verifyBackup(options.file, { stageSqliteTo: staged });
    if (!v.ok) {
      throw new BackupRejectedError(`${v.payload} is damaged: ${v.reason}; nothing was changed`);
    }
    const unfit = restorableInto(v.manifest, target.type);
    if (unfit) throw new BackupRejectedError(`${unfit}; nothing was changed`);

    const serving = await gatewaysServing(options);
    if (serving && !options.force) {
      throw new RestoreRefusedError(
        `${serving}; stop it first (or add --force to restore while it serves: the restore is one transaction); nothing was changed`,
      );
    }
    if (serving) warnings.push(`${serving}; restored anyway (--force)`);

    await options.confirm({
      manifest: v.manifest,
      payload: v.payload,
      target: sourceOf(target),
      current: await currentCounts(target),
    });

    const existed = target.type === "postgres" || existsSync(target.path);
    await ensureSchema(target);
    const preRestore = existed ? await backUpCurrent(options, step) : null;

    step("restoring");
    let done: { counts: BackupCounts; checkpoints: { kept: number; fromBackup: number } };
    if (target.type === "sqlite") {
      if (v.manifest.format === "logical") {
        await stageLogical(v.payload, v.manifest.compression === "gzip", staged);
      } else {
        await prepareStaged(staged);
      }
      done = replaceFromStaged(target.path, staged, v.manifest.counts);
    } else {
      done = await replacePostgres(target.url, v.payload, v.manifest);
    }
    return {
      manifest: v.manifest,
      payload: v.payload,
      checks: v.checks,
      preRestore,
      restored: done.counts,
      checkpoints: done.checkpoints,
      warnings,
      durationMs: Math.round(performance.now() - started),
    };
  } finally {
    removeSqliteFiles(staged);
  }
}

async function gatewaysServing(options: RestoreOptions): Promise<string | null> {
  const { target } = options;
  if (target.type === "sqlite") {
    const pid = sqliteGatewayPid(options.journalDir);
    return pid === null ? null : `a gateway (process ${pid}) is serving this database`;
  }
  let n: number;
  try {
    n = await postgresSessions(target.url);
  } catch (err) {
    throw new BackupError(`cannot reach PostgreSQL: ${messageOf(err)}`);
  }
  return n === 0
    ? null
    : `${n} other Tollgate connection(s) to this database are open (gateways or commands)`;
}

async function currentCounts(target: DatabaseTarget): Promise<BackupCounts | null> {
  try {
    if (target.type === "sqlite") {
      if (!existsSync(target.path)) return null;
      return countDatabaseFile(target.path);
    }
    return await dataCountsAt(target.url, "tollgate-restore");
  } catch {
    // No tables yet (or unreadable): the pre-restore backup says more.
    return null;
  }
}

async function backUpCurrent(
  options: RestoreOptions,
  step: (m: string) => void,
): Promise<CreatedBackup | null> {
  const { target } = options;
  step("backing up the current data");
  try {
    return await createBackup({
      target,
      dir: options.backupDir,
      compress: options.compress,
      format: options.preRestoreFormat ?? "native",
      origin: "pre-restore",
    });
  } catch (err) {
    throw new BackupError(
      `cannot back up the current data before replacing it (${messageOf(err)}); nothing was changed.${movedAside(target)}`,
    );
  }
}

function movedAside(target: DatabaseTarget): string {
  return target.type === "sqlite"
    ? ` If the current database is damaged beyond reading, move it aside (mv ${target.path} ${target.path}.damaged) and run the restore again.`
    : "";
}

/** The live database at this version's schema (created when it does not exist yet). */
async function ensureSchema(target: DatabaseTarget): Promise<void> {
  try {
    const storage =
      target.type === "sqlite"
        ? openSqliteStorage(target.path)
        : openPostgresStorage({ url: target.url, poolMax: 1 });
    try {
      await storage.migrate();
    } finally {
      await storage.close();
    }
  } catch (err) {
    throw new BackupError(
      `cannot open the current database (${messageOf(err)}); nothing was changed.${movedAside(target)}`,
    );
  }
}
