import { basename } from "node:path";
import { Command, Option } from "commander";
import { cliActor } from "../audit/actor.ts";
import { type Config, loadConfig } from "../config.ts";
import {
  type CreatedBackup,
  createBackup,
  type DatabaseTarget,
  sourceOf,
} from "../ops/backup/create.ts";
import { BackupError, BackupRejectedError } from "../ops/backup/errors.ts";
import { listBackups } from "../ops/backup/list.ts";
import type { BackupCounts, Manifest } from "../ops/backup/manifest.ts";
import { restorableInto, restoreBackup } from "../ops/backup/restore.ts";
import { describeSchema } from "../ops/backup/schema-version.ts";
import { verifyBackup } from "../ops/backup/verify.ts";
import { openStorage } from "../storage/open.ts";
import { CliError, confirm, requireExisting, skipQuestion } from "./context.ts";
import { printJson, printTable } from "./output.ts";

/** Exit codes of `backup verify` and `restore`, as documented. */
export const BACKUP_EXIT = { ok: 0, failed: 1, rejected: 2, notConfirmed: 3 } as const;

/** Ends the command with a documented exit code other than 1. */
class BackupExit extends Error {
  constructor(
    readonly code: number,
    message: string,
  ) {
    super(message);
  }
}

const n = (v: number) => v.toLocaleString("en-US");
const label = (k: string) => (k === "sqlite" ? "SQLite" : "PostgreSQL");

function size(bytes: number): string {
  if (bytes < 1024) return `${bytes} B`;
  const units = ["KiB", "MiB", "GiB", "TiB"];
  let v = bytes / 1024;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${v.toFixed(v < 10 ? 1 : 0)} ${units[i]}`;
}

function what(c: BackupCounts): string {
  return `${n(c.keys)} keys, ${n(c.usageBuckets)} usage buckets, ${n(c.lifetimeTokens)} lifetime tokens`;
}

function databaseTarget(config: Config): DatabaseTarget {
  const s = config.storage;
  if (s.type === "file") {
    throw new CliError(
      `backups cover SQLite and PostgreSQL; the legacy file backend is one file: copy ${s.path} while the gateway is stopped`,
    );
  }
  return s;
}

/** Runs an action, turning backup errors into one line and the documented exit code. */
function run<A extends unknown[]>(action: (...args: A) => Promise<void>) {
  return async (...args: A) => {
    try {
      await action(...args);
    } catch (err) {
      if (err instanceof BackupExit) {
        process.stderr.write(`${err.message}\n`);
        process.exit(err.code);
      }
      if (err instanceof BackupRejectedError) {
        process.stderr.write(`error: ${err.message}\n`);
        process.exit(BACKUP_EXIT.rejected);
      }
      if (err instanceof BackupError) throw new CliError(err.message);
      throw err;
    }
  };
}

function createdJson(b: CreatedBackup) {
  const m = b.manifest;
  return {
    path: b.path,
    manifest: b.manifestPath,
    bytes: m.payload.bytes,
    sha256: m.payload.sha256,
    kind: m.kind,
    format: m.format,
    compression: m.compression,
    origin: m.origin,
    created_at: m.createdAt,
    counts: m.counts,
    schema: m.schema,
    checks: b.checks,
    warnings: b.warnings,
    duration_ms: b.durationMs,
  };
}

/** `backup`, with `backup verify`. */
export function backupCommand(): Command {
  const backup = new Command("backup")
    .description(
      "back up the configured database into BACKUP_DIR (or --out), checked before it is kept",
    )
    .option("--out <dir>", "folder to write into (default: BACKUP_DIR)")
    .option("--no-compress", "do not compress (default: gzip; pg_dump compresses its own archive)")
    .addOption(
      new Option(
        "--format <format>",
        "native: a SQLite copy, or pg_dump; logical: NDJSON that restores into either kind",
      )
        .choices(["native", "logical"])
        .default("native"),
    )
    .option("--json", "print the result as JSON")
    .addHelpText(
      "after",
      "\nSafe while the gateway serves: the copy is one consistent snapshot.\n" +
        "Writes <name> and <name>.manifest.json; see docs/backup.md.",
    )
    .action(
      run(
        async (o: {
          out?: string;
          compress: boolean;
          format: "native" | "logical";
          json?: boolean;
        }) => {
          const config = loadConfig();
          requireExisting(config);
          const b = await createBackup({
            target: databaseTarget(config),
            dir: o.out ?? config.backup.dir,
            compress: o.compress,
            format: o.format,
            origin: "manual",
          });
          if (o.json) return printJson(createdJson(b));
          for (const w of b.warnings) process.stderr.write(`warning: ${w}\n`);
          const m = b.manifest;
          process.stdout.write(
            `Backup written: ${b.path} (${size(m.payload.bytes)})\n` +
              `  ${label(m.kind)}, ${m.format} format${m.compression === "gzip" ? ", gzip" : ""}: ${what(m.counts)}\n` +
              `  checked: ${b.checks.join(", ")} (${(b.durationMs / 1000).toFixed(1)} s)\n`,
          );
        },
      ),
    );

  backup
    .command("verify")
    .description("check that a backup is complete and restorable into the configured database")
    .argument("<file>", "the backup (or its .manifest.json)")
    .option("--json", "print the result as JSON")
    .addHelpText(
      "after",
      "\nExit codes: 0 sound and restorable here, 1 could not check (e.g. a tool is missing),\n" +
        "2 damaged, or not restorable into the configured database (another kind, a newer schema).",
    )
    .action(
      run(async (file: string, o: { json?: boolean }) => {
        const config = loadConfig();
        const kind = databaseTarget(config).type;
        const v = await verifyBackup(file);
        const unfit = v.ok ? restorableInto(v.manifest, kind) : null;
        if (o.json) {
          printJson({
            ok: v.ok && !unfit,
            file: v.payload,
            manifest_file: v.manifestPath,
            ...(v.ok ? { checks: v.checks } : { damage: v.code, reason: v.reason }),
            restorable_here: v.ok ? !unfit : false,
            ...(unfit ? { reason: unfit } : {}),
            manifest: v.manifest ?? null,
          });
          if (!v.ok || unfit) process.exit(BACKUP_EXIT.rejected);
          return;
        }
        if (!v.ok)
          throw new BackupExit(BACKUP_EXIT.rejected, `error: ${v.payload} is damaged: ${v.reason}`);
        const m = v.manifest;
        process.stdout.write(
          `${unfit ? "Sound" : "OK"}: ${v.payload}\n${describe(m)}\n  checked: ${v.checks.join(", ")}\n`,
        );
        if (unfit) {
          throw new BackupExit(BACKUP_EXIT.rejected, `error: it cannot be restored here: ${unfit}`);
        }
        process.stdout.write(`  restorable into the configured ${label(kind)} database\n`);
      }),
    );
  return backup;
}

function describe(m: Manifest): string {
  return (
    `  ${label(m.kind)} backup (${m.format} format${m.compression === "gzip" ? ", gzip" : ""}) of ${m.source}\n` +
    `  taken ${m.createdAt} (${m.origin}) by Tollgate ${m.tollgateVersion}, schema ${describeSchema(m.schema)}\n` +
    `  ${what(m.counts)}, ${n(m.counts.lifetimeRequests)} requests, ${n(m.counts.checkpoints)} journal checkpoints`
  );
}

/** `backups list`. */
export function backupsCommand(): Command {
  const backups = new Command("backups").description("list backups");
  backups
    .command("list")
    .description("list the backups in BACKUP_DIR, newest first")
    .option("--dir <dir>", "folder to list (default: BACKUP_DIR)")
    .option("--json", "print the list as JSON")
    .addHelpText(
      "after",
      "\nStatus checks the manifest and the file's size; `backup verify FILE` checks the content.",
    )
    .action(
      run(async (o: { dir?: string; json?: boolean }) => {
        const config = loadConfig();
        const dir = o.dir ?? config.backup.dir;
        const list = listBackups(dir);
        if (o.json) {
          return printJson({
            dir,
            backups: list.map((b) => ({
              path: b.path,
              status: b.status,
              ...(b.problem ? { problem: b.problem } : {}),
              created_at: b.createdAt,
              bytes: b.bytes,
              kind: b.manifest?.kind ?? null,
              format: b.manifest?.format ?? null,
              origin: b.manifest?.origin ?? null,
              source: b.manifest?.source ?? null,
              counts: b.manifest?.counts ?? null,
            })),
          });
        }
        if (list.length === 0) {
          process.stdout.write(`No backups in ${dir}.\n`);
          return;
        }
        printTable(
          [
            "created",
            "kind",
            "format",
            "origin",
            "size",
            "keys",
            "buckets",
            "lifetime tokens",
            "status",
            "file",
          ],
          list.map((b) => {
            const m = b.manifest;
            return [
              b.createdAt ?? "?",
              m?.kind ?? "?",
              m?.format ?? "?",
              m?.origin ?? "?",
              b.bytes === null ? "-" : size(b.bytes),
              m ? n(m.counts.keys) : "?",
              m ? n(m.counts.usageBuckets) : "?",
              m ? n(m.counts.lifetimeTokens) : "?",
              b.status === "ok" ? "ok" : `DAMAGED: ${b.problem}`,
              b.path,
            ];
          }),
        );
      }),
    );
  return backups;
}

export function restoreCommand(): Command {
  return new Command("restore")
    .description(
      "replace the configured database's keys and usage with a backup's, after a backup of them",
    )
    .argument("<file>", "the backup (or its .manifest.json)")
    .option("-y, --yes", "do not ask for confirmation")
    .option(
      "--force",
      "restore even while a gateway serves the database (one transaction; see docs/backup.md)",
    )
    .option("--json", "print the result as JSON")
    .addHelpText(
      "after",
      "\nVerifies the backup first and refuses one of another kind (unless logical). Refuses\n" +
        "while a gateway serves the database unless --force; asks first unless --yes. The current\n" +
        "data is backed up first; the output names that backup, which undoes the restore.\n" +
        "Exit codes: 0 restored, 1 failed or refused (nothing changed), 2 the backup is damaged\n" +
        "or cannot go into this database (nothing changed), 3 not confirmed.",
    )
    .action(
      run(async (file: string, o: { yes?: boolean; force?: boolean; json?: boolean }) => {
        const config = loadConfig();
        const target = databaseTarget(config);
        requireExisting(config);
        const say = (line: string) => {
          if (!o.json) process.stderr.write(`${line}\n`);
        };
        const r = await restoreBackup({
          file,
          target,
          journalDir: config.journalDir,
          backupDir: config.backup.dir,
          compress: config.backup.compress,
          force: Boolean(o.force),
          onStep: (m) => say(`${m}…`),
          confirm: async (plan) => {
            if (skipQuestion(o)) return;
            const now = plan.current ? what(plan.current) : "nothing readable";
            try {
              await confirm(
                `Replace the data of ${plan.target} (${now}) with the backup taken ${plan.manifest.createdAt} (${what(plan.manifest.counts)})? The current data is backed up first.`,
              );
            } catch (err) {
              throw new BackupExit(BACKUP_EXIT.notConfirmed, `error: ${(err as Error).message}`);
            }
          },
        });
        for (const w of r.warnings) process.stderr.write(`warning: ${w}\n`);
        await recordRestore(config, r.payload, r.restored);
        const undo = r.preRestore ? `npx tollgate restore ${r.preRestore.path} --yes` : null;
        if (o.json) {
          return printJson({
            restored: r.restored,
            from: r.payload,
            into: sourceOf(target),
            pre_restore_backup: r.preRestore?.path ?? null,
            undo,
            checkpoints: r.checkpoints,
            checks: r.checks,
            warnings: r.warnings,
            duration_ms: r.durationMs,
          });
        }
        process.stdout.write(
          `${r.preRestore ? `Backup of the data replaced: ${r.preRestore.path}\n` : ""}` +
            `Restored ${what(r.restored)} from ${r.payload} into ${sourceOf(target)}; counts and sums verified (${(r.durationMs / 1000).toFixed(1)} s).\n` +
            `${undo ? `To undo: ${undo}\n` : ""}`,
        );
      }),
    );
}

/** The restore's own audit entry, after the backup's log came back with the data. */
async function recordRestore(config: Config, payload: string, restored: BackupCounts) {
  const storage = await openStorage(config);
  try {
    await storage.appendAudit({
      at: Date.now(),
      actor: cliActor(),
      action: "data.restore",
      keyId: null,
      keyPrefix: null,
      keyName: null,
      changes: { from: basename(payload), keys: restored.keys },
    });
  } finally {
    await storage.close();
  }
}
