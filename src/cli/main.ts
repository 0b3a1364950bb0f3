#!/usr/bin/env bun
import { Command, CommanderError } from "commander";
import { backupCommands } from "./backup.ts";
import { isUserError, withStorage } from "./context.ts";
import { dbCommand } from "./db.ts";
import { healthCommand } from "./health.ts";
import { keysCommand } from "./keys.ts";
import { migrateCommand } from "./migrate.ts";
import { serveCommand } from "./serve.ts";
import { usageCommand } from "./usage.ts";

// What Tollgate writes (database, journal, backups) is its user's alone,
// whatever the shell's umask; the places that create files also say so.
process.umask(0o077);

const program = new Command("tollgate")
  .description("Self-hosted LLM API gateway: per-person keys, rolling 5-hour token quotas.")
  .showHelpAfterError()
  .exitOverride();

program.addCommand(serveCommand());
program.addCommand(keysCommand(withStorage));
program.addCommand(usageCommand(withStorage));
program.addCommand(migrateCommand());
program.addCommand(dbCommand());
program.addCommand(healthCommand());
for (const command of backupCommands()) program.addCommand(command);

try {
  await program.parseAsync(process.argv);
} catch (err) {
  if (err instanceof CommanderError) {
    // --help and --version end here too, with code 0.
    process.exit(err.exitCode);
  }
  if (isUserError(err)) {
    process.stderr.write(`error: ${err.message}\n`);
    process.exit(1);
  }
  const e = err instanceof Error ? err : new Error(String(err));
  if (process.env.LOG_LEVEL === "debug") process.stderr.write(`${e.stack}\n`);
  process.stderr.write(`error: ${e.message}\n`);
  process.exit(1);
}
