#!/usr/bin/env bun
import { Command, CommanderError, Help, Option } from "commander";
import pkg from "../../package.json" with { type: "json" };
import { auditCommand } from "./audit.ts";
import { backupCommands } from "./backup.ts";
import { isUserError, withStorage } from "./context.ts";
import { dbCommand } from "./db.ts";
import { applyEnvFile } from "./env-file.ts";
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
  .version(pkg.version, "-V, --version", "print the version")
  .option(
    "--env-file <path>",
    "read settings from this file instead of ./.env (the environment still wins)",
  )
  .showHelpAfterError()
  .exitOverride()
  .enablePositionalOptions()
  // Before any command reads its configuration.
  .hook("preAction", (_, action) => {
    const envFile = action.optsWithGlobals<{ envFile?: string }>().envFile;
    if (envFile) applyEnvFile(envFile);
  });

program.addCommand(serveCommand());
program.addCommand(keysCommand(withStorage));
program.addCommand(usageCommand(withStorage));
program.addCommand(auditCommand(withStorage));
program.addCommand(migrateCommand());
program.addCommand(dbCommand());
program.addCommand(healthCommand());
for (const command of backupCommands()) program.addCommand(command);
program.configureHelp(markRequired());
acceptEverywhere(program, "--env-file <path>");

/** Help says which options a command cannot do without. */
function markRequired(): Partial<Help> {
  return {
    optionDescription: (option: Option) => {
      const text = new Help().optionDescription(option);
      return option.mandatory ? `(required) ${text}` : text;
    },
  };
}

/**
 * A global option that may also follow the command's name (`tollgate keys
 * list --env-file F`), while every other option belongs to the command it
 * follows (`backup verify F --json` is verify's --json, not backup's).
 */
function acceptEverywhere(parent: Command, flags: string): void {
  for (const command of parent.commands) {
    command.configureHelp(markRequired());
    command.addOption(new Option(flags).hideHelp());
    if (command.commands.length > 0) command.enablePositionalOptions();
    acceptEverywhere(command, flags);
  }
}

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
