import { randomBytes } from "node:crypto";
import { mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { PRIVATE_DIR, PRIVATE_FILE } from "../util/private-files.ts";

export class InstanceLockError extends Error {}

export interface InstanceClaim {
  id: string;
  release(): void;
}

/**
 * Each gateway process owns a journal directory: its instance id lives there
 * (so the id, and with it the journal's checkpoint, survives restarts) and a
 * lock file keeps a second process from appending to the same journal.
 */
export function claimInstance(dir: string): InstanceClaim {
  mkdirSync(dir, { recursive: true, mode: PRIVATE_DIR });
  const lock = join(dir, "instance.lock");
  takeLock(lock);
  const idFile = join(dir, "instance-id");
  let id = readText(idFile);
  if (!id || !/^[A-Za-z0-9_-]{1,64}$/.test(id)) {
    id = `i_${randomBytes(8).toString("hex")}`;
    writeFileSync(idFile, `${id}\n`, { mode: PRIVATE_FILE });
  }
  return {
    id,
    release: () => {
      if (readText(lock) === String(process.pid)) rmSync(lock, { force: true });
    },
  };
}

function takeLock(lock: string): void {
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      writeFileSync(lock, String(process.pid), { flag: "wx", mode: PRIVATE_FILE });
      return;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "EEXIST") throw err;
    }
    const holder = Number(readText(lock));
    if (Number.isInteger(holder) && holder > 0 && holder !== process.pid && isAlive(holder)) {
      throw new InstanceLockError(
        `journal directory ${lock.replace(/\/instance\.lock$/, "")} is in use by process ${holder}; give each gateway instance its own JOURNAL_DIR`,
      );
    }
    // Left behind by a process that is gone: take it over. Renaming it away
    // first means that of two processes finding the same stale lock, only
    // one removes it; the other cannot then remove the first one's new lock.
    try {
      renameSync(lock, `${lock}.stale-${process.pid}`);
      rmSync(`${lock}.stale-${process.pid}`, { force: true });
    } catch {
      // Someone else took it over first: try again from the top.
    }
  }
  throw new InstanceLockError(`could not lock ${lock}`);
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === "EPERM";
  }
}

function readText(path: string): string | undefined {
  try {
    return readFileSync(path, "utf8").trim();
  } catch {
    return undefined;
  }
}
