import { Command } from "commander";

/**
 * A top-level command as `tollgate --help` lists it, and how to load it. Only
 * the command that runs is loaded: `keys list` has no use for the gateway's
 * HTTP stack, nor `serve` for backup, restore and legacy import (each module
 * pulls in its own part of the code, and memory is kept for the process's life).
 */
export interface CommandEntry {
  name: string;
  /** Exactly the module's own description; registry.test.ts holds them equal. */
  description: string;
  /** Its arguments as the help line shows them, e.g. `<file>`. */
  args?: string;
  load(): Promise<Command>;
}

const withStorage = async () => (await import("./context.ts")).withStorage;

export const COMMANDS: readonly CommandEntry[] = [
  {
    name: "serve",
    description: "run the gateway (what `npm start` runs)",
    load: async () => (await import("./serve.ts")).serveCommand(),
  },
  {
    name: "keys",
    description: "create and manage API keys",
    load: async () => (await import("./keys.ts")).keysCommand(await withStorage()),
  },
  {
    name: "usage",
    description: "show usage across all keys, per step, and the top keys",
    load: async () => (await import("./usage.ts")).usageCommand(await withStorage()),
  },
  {
    name: "audit",
    description: "show the audit log: who changed which key or data, and when (newest first)",
    load: async () => (await import("./audit.ts")).auditCommand(await withStorage()),
  },
  {
    name: "migrate",
    description:
      "import the legacy apikeys.json into the configured database (keys hashed, usage kept)",
    load: async () => (await import("./migrate.ts")).migrateCommand(),
  },
  {
    name: "db",
    description: "database maintenance",
    load: async () => (await import("./db.ts")).dbCommand(),
  },
  {
    name: "health",
    description: "ask a running gateway whether it is ready (GET /health/ready)",
    load: async () => (await import("./health.ts")).healthCommand(),
  },
  {
    name: "backup",
    description:
      "back up the configured database into BACKUP_DIR (or --out), checked before it is kept",
    load: async () => (await import("./backup.ts")).backupCommand(),
  },
  {
    name: "backups",
    description: "list backups",
    load: async () => (await import("./backup.ts")).backupsCommand(),
  },
  {
    name: "restore",
    description:
      "replace the configured database's keys and usage with a backup's, after a backup of them",
    args: "<file>",
    load: async () => (await import("./backup.ts")).restoreCommand(),
  },
];

/** Stands in for a command that is not run: enough for the list in `tollgate --help`. */
export function placeholder(entry: CommandEntry): Command {
  const command = new Command(entry.name).description(entry.description);
  if (entry.args) command.argument(entry.args);
  return command;
}

/**
 * The commands for one command line: the one it names (or asks help for,
 * `tollgate help keys`) loaded, the others as placeholders, in help order.
 */
export async function commandsFor(args: readonly string[]): Promise<Command[]> {
  const named = namedCommands(args);
  return Promise.all(
    COMMANDS.map((entry) => (named.includes(entry.name) ? entry.load() : placeholder(entry))),
  );
}

/**
 * The command a command line runs: its first word that is not a global option
 * (`--env-file` takes a value; the others none). For `help X`, X too.
 */
export function namedCommands(args: readonly string[]): string[] {
  const words: string[] = [];
  for (let i = 0; i < args.length && words.length < 2; i++) {
    const arg = args[i] as string;
    if (arg === "--env-file") i++;
    else if (!arg.startsWith("-")) words.push(arg);
    else if (words.length > 0) break;
  }
  return words[0] === "help" ? words : words.slice(0, 1);
}
