import { constants, copyFileSync, mkdirSync, readFileSync } from "node:fs";
import { basename, dirname, join } from "node:path";
import { Command, Option } from "commander";
import { cliActor } from "../audit/actor.ts";
import { loadConfig } from "../config.ts";
import { maskedKey } from "../keys/secret.ts";
import { legacyToRows, parseLegacy, summarize } from "../legacy/convert.ts";
import { compareRows } from "../storage/compare-rows.ts";
import { describeStorage } from "../storage/open.ts";
import { ImportVerificationError } from "../storage/types.ts";
import { PRIVATE_DIR } from "../util/private-files.ts";
import { CliError, confirm, openExisting, skipQuestion } from "./context.ts";
import { printJson } from "./output.ts";

/** Exit codes of `tollgate migrate`, as documented. */
export const MIGRATE_EXIT = { ok: 0, failed: 1, invalidFile: 2, notConfirmed: 3 } as const;

class MigrateExit extends Error {
  constructor(
    readonly code: number,
    message: string,
  ) {
    super(message);
  }
}

const n = (v: number) => v.toLocaleString("en-US");

export function migrateCommand(): Command {
  return new Command("migrate")
    .description(
      "import the legacy apikeys.json into the configured database (keys hashed, usage kept)",
    )
    .option("--file <path>", "legacy file to import (default: DATA_FILE)")
    .option("--dry-run", "report what would be imported; write nothing")
    .option("-y, --yes", "do not ask for confirmation")
    .addOption(new Option("--force", "deprecated: use --yes").hideHelp())
    .option("--json", "print the report as JSON")
    .addHelpText(
      "after",
      "\nExit codes: 0 imported (or nothing to do), 1 failed and nothing was written,\n" +
        "2 the file is invalid and nothing was written, 3 not confirmed.\n" +
        "Re-running is safe: keys already in the database are skipped, never updated or charged twice.",
    )
    .action(async (o: MigrateOptions) => {
      try {
        await migrate(o);
      } catch (err) {
        if (err instanceof MigrateExit) {
          process.stderr.write(`${err.message}\n`);
          process.exit(err.code);
        }
        throw err;
      }
    });
}

interface MigrateOptions {
  file?: string;
  dryRun?: boolean;
  yes?: boolean;
  force?: boolean;
  json?: boolean;
}

async function migrate(o: MigrateOptions) {
  const config = loadConfig();
  const file = o.file ?? config.dataFile;
  if (config.storage.type === "file") {
    throw new CliError("migrate imports into SQLite or PostgreSQL; unset STORAGE_TYPE=file first");
  }
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch (err) {
    throw new MigrateExit(
      MIGRATE_EXIT.failed,
      `error: cannot read ${file}: ${(err as Error).message}`,
    );
  }
  const parsed = parseLegacy(text);
  if (!parsed.ok) {
    const lines = parsed.problems.slice(0, 50).map((p) => `  - ${p}`);
    if (parsed.problems.length > 50) lines.push(`  … and ${parsed.problems.length - 50} more`);
    if (parsed.shape) lines.push(`A legacy key file looks like this:\n${parsed.shape}`);
    throw new MigrateExit(
      MIGRATE_EXIT.invalidFile,
      `error: ${file} is not a valid legacy key file (${parsed.problems.length} problem(s)); nothing was written:\n${lines.join("\n")}`,
    );
  }
  const now = Date.now();
  const rows = legacyToRows(parsed.file);
  const summary = summarize(rows, now);
  const say = (line: string) => {
    if (!o.json) process.stdout.write(`${line}\n`);
  };

  const storage = await openExisting(config);
  try {
    const present = new Set<string>();
    for (const r of rows) if (await storage.getKeyByHash(r.key.keyHash)) present.add(r.key.id);
    const fresh = rows.filter((r) => !present.has(r.key.id));
    say(
      `${file}: ${n(summary.keys)} keys (${n(summary.expired)} expired), ${n(summary.lifetimeTokens)} lifetime tokens, ` +
        `${n(summary.windowTokens)} tokens in current 5-hour windows.`,
    );
    say(
      `Target: ${describeStorage(config)}. ${n(fresh.length)} to import, ${n(present.size)} already there (skipped).`,
    );

    if (o.dryRun) {
      if (o.json) {
        printJson({
          dry_run: true,
          file,
          ...summary,
          to_import: fresh.map((r) => ({
            id: r.key.id,
            name: r.key.name,
            prefix: r.key.keyPrefix,
          })),
          already_present: [...present],
        });
      } else {
        for (const r of fresh) say(`  would import ${maskedKey(r.key.keyPrefix)}  ${r.key.name}`);
        say("Dry run: nothing was written.");
      }
      return;
    }
    if (fresh.length === 0) {
      if (o.json) printJson({ imported: 0, skipped: present.size, file });
      else say("Nothing to import: every key is already in the database.");
      return;
    }
    if (!skipQuestion(o)) {
      try {
        await confirm(`Import ${n(fresh.length)} keys into ${describeStorage(config)}?`);
      } catch (err) {
        throw new MigrateExit(MIGRATE_EXIT.notConfirmed, `error: ${(err as Error).message}`);
      }
    }

    const backup = backupSource(file);
    say(`Backup of the source file: ${backup}`);
    const started = performance.now();
    const result = await storage.importKeys?.(fresh, {
      skipExisting: true,
      verify: (written) => compareRows(fresh, written),
      onProgress: (done, total) => {
        if (total >= 1000 && !o.json) process.stderr.write(`\rimporting… ${n(done)}/${n(total)}`);
      },
    });
    if (fresh.length >= 1000 && !o.json) process.stderr.write("\n");
    if (!result) throw new CliError(`${describeStorage(config)} does not support importing`);
    await storage.appendAudit({
      at: Date.now(),
      actor: cliActor(),
      action: "data.migrate",
      keyId: null,
      keyPrefix: null,
      keyName: null,
      changes: {
        file: basename(file),
        imported: result.inserted,
        skipped: present.size + result.skipped.length,
      },
    });
    const ms = Math.round(performance.now() - started);
    if (o.json) {
      printJson({
        imported: result.inserted,
        skipped: present.size + result.skipped.length,
        verified: true,
        backup,
        ms,
      });
    } else {
      say(
        `Imported ${n(result.inserted)} keys (${n(present.size + result.skipped.length)} skipped), ` +
          `every field verified, in ${n(ms)} ms. Holders keep using their keys unchanged.`,
      );
    }
  } catch (err) {
    if (err instanceof ImportVerificationError) {
      throw new MigrateExit(
        MIGRATE_EXIT.failed,
        `error: ${err.message}\n${err.problems.map((p) => `  - ${p}`).join("\n")}`,
      );
    }
    throw err;
  } finally {
    await storage.close();
  }
}

/**
 * A timestamped copy of the source beside it, before anything is written.
 * The source itself is never modified.
 */
function backupSource(file: string): string {
  const dir = join(dirname(file), "backups");
  const stamp = new Date().toISOString().replace(/[:.]/g, "-");
  const target = join(dir, `${basename(file, ".json")}-${stamp}.json`);
  try {
    mkdirSync(dir, { recursive: true, mode: PRIVATE_DIR });
    copyFileSync(file, target, constants.COPYFILE_EXCL);
  } catch (err) {
    throw new MigrateExit(
      MIGRATE_EXIT.failed,
      `error: cannot write the backup ${target}: ${(err as Error).message}; nothing was imported`,
    );
  }
  return target;
}
