import { existsSync } from "node:fs";
import { isAbsolute, resolve } from "node:path";
import { createInterface } from "node:readline/promises";
import { AdminError } from "../admin/errors.ts";
import { type Config, ConfigError, loadConfig } from "../config.ts";
import { KeyInputError } from "../keys/service.ts";
import { LockTimeoutError } from "../storage/file/lock.ts";
import { KeyFileError } from "../storage/file/schema.ts";
import { openStorage, StorageUnreachableError } from "../storage/open.ts";
import type { Storage } from "../storage/types.ts";

export type WithStorage = (fn: (storage: Storage) => Promise<void>) => Promise<void>;

/** A failure the user can act on: printed as one line, no stack trace. */
export class CliError extends Error {}

/**
 * Opens a database that must already exist: only `serve` and `db migrate`
 * create one, so a command run from the wrong folder says so instead of
 * working on a new, empty database the gateway never sees.
 */
export async function openExisting(config: Pick<Config, "storage" | "database">): Promise<Storage> {
  requireExisting(config);
  return openStorage(config);
}

/** Refuses a SQLite database or legacy file that does not exist; creates nothing. */
export function requireExisting(config: Pick<Config, "storage">): void {
  const s = config.storage;
  if (s.type === "postgres" || existsSync(s.path)) return;
  const setting = s.type === "file" ? "DATA_FILE" : "DATABASE_PATH";
  const where = isAbsolute(s.path)
    ? setting
    : `${setting}=${s.path}, read from the current folder ${process.cwd()}`;
  throw new CliError(
    `no database at ${resolve(s.path)} (${where}); nothing was created. ` +
      `Run this where the gateway runs, set ${setting} or DATABASE_URL, or pass --env-file with the gateway's settings. ` +
      "To start a new, empty database: tollgate db migrate",
  );
}

/** Opens the configured storage for one command and always closes it. */
export const withStorage: WithStorage = async (fn) => {
  const storage = await openExisting(loadConfig());
  try {
    await fn(storage);
  } finally {
    await storage.close();
  }
};

/** Asks on a terminal; refuses when there is none to ask on. */
export async function confirm(question: string): Promise<void> {
  if (!process.stdin.isTTY) {
    throw new CliError("not on a terminal, so cannot ask for confirmation; add --yes to go ahead");
  }
  const rl = createInterface({ input: process.stdin, output: process.stderr });
  try {
    const answer = await rl.question(`${question} [y/N] `);
    if (!/^y(es)?$/i.test(answer.trim())) throw new CliError("cancelled; nothing changed");
  } finally {
    rl.close();
  }
}

/**
 * Whether the question is skipped: `--yes`. Until the next version `--force`
 * still skips it too, as it used to, with a warning; where `--force` has no
 * safety check of its own to override, that is all it does.
 */
export function skipQuestion(o: { yes?: boolean; force?: boolean }): boolean {
  if (o.yes) return true;
  if (!o.force) return false;
  process.stderr.write(
    "warning: --force no longer skips the question in the next version; use --yes (--force only overrides safety checks)\n",
  );
  return true;
}

/** Errors the user caused or can fix, as opposed to our bugs. */
export function isUserError(err: unknown): err is Error {
  return (
    err instanceof CliError ||
    err instanceof AdminError ||
    err instanceof ConfigError ||
    err instanceof KeyInputError ||
    err instanceof StorageUnreachableError ||
    err instanceof KeyFileError ||
    err instanceof LockTimeoutError
  );
}
