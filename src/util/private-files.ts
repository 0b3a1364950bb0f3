import { closeSync, existsSync, mkdirSync, openSync } from "node:fs";

// Keys' hashes, usage and backups are nobody else's business on a shared
// machine: what Tollgate creates is readable by its own user only, whatever
// the umask. Files and folders that already exist keep their modes (the
// operator may have chosen them).

/** Mode of every file Tollgate creates. */
export const PRIVATE_FILE = 0o600;
/** Mode of every folder Tollgate creates. */
export const PRIVATE_DIR = 0o700;

/** `mkdir -p` with private modes for the folders it creates. */
export function makePrivateDir(dir: string): void {
  mkdirSync(dir, { recursive: true, mode: PRIVATE_DIR });
}

/**
 * Creates `path` empty and private unless it exists. SQLite gives its `-wal`
 * and `-shm` files the mode of the database file, so they follow.
 */
export function touchPrivate(path: string): void {
  if (existsSync(path)) return;
  try {
    closeSync(openSync(path, "wx", PRIVATE_FILE));
  } catch (err) {
    // Another process created it in the meantime: theirs is as good.
    if ((err as NodeJS.ErrnoException).code !== "EEXIST") throw err;
  }
}
