import { createInterface } from "node:readline/promises";
import { AdminError } from "../admin/errors.ts";
import { ConfigError, loadConfig } from "../config.ts";
import { KeyInputError } from "../keys/service.ts";
import { LockTimeoutError } from "../storage/file/lock.ts";
import { KeyFileError } from "../storage/file/schema.ts";
import { openStorage, StorageUnreachableError } from "../storage/open.ts";
import type { Storage } from "../storage/types.ts";

export type WithStorage = (fn: (storage: Storage) => Promise<void>) => Promise<void>;

/** A failure the user can act on: printed as one line, no stack trace. */
export class CliError extends Error {}

/** Opens the configured storage for one command and always closes it. */
export const withStorage: WithStorage = async (fn) => {
  const storage = await openStorage(loadConfig());
  try {
    await fn(storage);
  } finally {
    await storage.close();
  }
};

/** Asks on a terminal; refuses when there is none to ask on. */
export async function confirm(question: string): Promise<void> {
  if (!process.stdin.isTTY) {
    throw new CliError(
      "not on a terminal, so cannot ask for confirmation; add --force to go ahead",
    );
  }
  const rl = createInterface({ input: process.stdin, output: process.stderr });
  try {
    const answer = await rl.question(`${question} [y/N] `);
    if (!/^y(es)?$/i.test(answer.trim())) throw new CliError("cancelled; nothing changed");
  } finally {
    rl.close();
  }
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
