import { randomUUID } from "node:crypto";
import {
  closeSync,
  openSync,
  readFileSync,
  rmdirSync,
  type Stats,
  statSync,
  unlinkSync,
  writeSync,
} from "node:fs";
import { hostname } from "node:os";
import { PRIVATE_FILE } from "../../util/private-files.ts";
import { backoffMs } from "../retry.ts";

// A lock file shared by every process writing the legacy JSON file (the
// server, the CLI, a second server). Created with O_EXCL, so exactly one
// process holds it; it names its holder so a lock left by a crashed process
// is broken at once instead of blocking writers until it ages out.
//
// The old gateway's lock gave up after 10 tries 50 ms apart, and failed
// requests under load. Holding the lock only for one read-modify-write of the
// file (milliseconds) and waiting up to seconds, with jittered backoff, makes
// waiting the normal case and timing out a sign of a real fault.

export interface LockOptions {
  /** How long to wait for the lock before giving up. */
  waitMs: number;
  /** A lock older than this is abandoned, whoever holds it. */
  staleMs: number;
  /** First and longest pause between two attempts. */
  baseMs: number;
  maxMs: number;
}

export const DEFAULT_LOCK: LockOptions = { waitMs: 15_000, staleMs: 10_000, baseMs: 1, maxMs: 25 };

export class LockTimeoutError extends Error {
  override readonly name = "LockTimeoutError";
}

interface Holder {
  pid: number;
  host: string;
  token: string;
}

/**
 * Tokens of the locks this process holds. A lock naming our pid with none of
 * these was left by an earlier process that had the same pid (pid 1 in a
 * container restarted after a crash), so it is stale.
 */
const heldHere = new Set<string>();

/** Runs `fn` holding the lock file at `lockPath`. */
export async function withFileLock<T>(
  lockPath: string,
  fn: () => T | Promise<T>,
  options: LockOptions = DEFAULT_LOCK,
): Promise<T> {
  const token = await acquire(lockPath, options);
  try {
    return await fn();
  } finally {
    release(lockPath, token);
  }
}

async function acquire(lockPath: string, o: LockOptions): Promise<string> {
  const me: Holder = { pid: process.pid, host: hostname(), token: randomUUID() };
  const deadline = Date.now() + o.waitMs;
  for (let attempt = 1; ; attempt++) {
    if (tryCreate(lockPath, me)) {
      heldHere.add(me.token);
      return me.token;
    }
    if (breakIfStale(lockPath, o.staleMs)) continue;
    if (Date.now() >= deadline) {
      throw new LockTimeoutError(
        `could not lock ${lockPath} within ${o.waitMs} ms: ${describeHolder(lockPath)}`,
      );
    }
    await Bun.sleep(Math.max(1, backoffMs(attempt, o)));
  }
}

function tryCreate(lockPath: string, me: Holder): boolean {
  let fd: number;
  try {
    fd = openSync(lockPath, "wx", PRIVATE_FILE);
  } catch (err) {
    if (errorCode(err) === "EEXIST") return false;
    throw err;
  }
  try {
    writeSync(fd, JSON.stringify(me));
  } catch (err) {
    closeSync(fd);
    unlinkSync(lockPath);
    throw err;
  }
  closeSync(fd);
  return true;
}

function release(lockPath: string, token: string): void {
  heldHere.delete(token);
  // Remove only our own lock: if it was broken as stale (we were frozen for
  // longer than staleMs), the file now belongs to someone else.
  if (readHolder(lockPath)?.token === token) unlinkQuietly(lockPath);
}

/**
 * Removes the lock if its holder is gone (same host, process not running) or
 * it is older than `staleMs`. True when the caller should try again at once.
 */
function breakIfStale(lockPath: string, staleMs: number): boolean {
  const seen = statOrNull(lockPath);
  if (!seen) return true;
  if (!isStale(readHolder(lockPath), seen, staleMs)) return false;
  // Two processes may find the same stale lock; the first removes it and
  // takes a new one, the second must not then remove that fresh lock. A
  // short-lived guard file makes "check it is still the stale one, remove it"
  // a single step.
  const guard = `${lockPath}.break`;
  const guardStat = statOrNull(guard);
  if (guardStat && Date.now() - guardStat.mtimeMs > staleMs) unlinkQuietly(guard);
  if (!tryCreate(guard, { pid: process.pid, host: hostname(), token: randomUUID() })) return false;
  try {
    const now = statOrNull(lockPath);
    if (now && now.ino === seen.ino && now.mtimeMs === seen.mtimeMs) {
      // The old gateway locked with a directory of this name: respect it
      // while it is fresh, remove it like our own once stale.
      if (now.isDirectory()) rmdirSync(lockPath);
      else unlinkSync(lockPath);
    }
  } finally {
    unlinkQuietly(guard);
  }
  return true;
}

function isStale(holder: Holder | null, st: Stats, staleMs: number): boolean {
  if (Date.now() - st.mtimeMs > staleMs) return true;
  if (!holder || holder.host !== hostname()) return false;
  if (holder.pid === process.pid) return !heldHere.has(holder.token);
  return !processAlive(holder.pid);
}

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    // EPERM: it exists but belongs to another user.
    return errorCode(err) === "EPERM";
  }
}

/** The holder named in the lock; null while it is being written, or for a directory lock. */
function readHolder(lockPath: string): Holder | null {
  try {
    const h = JSON.parse(readFileSync(lockPath, "utf8")) as Partial<Holder>;
    if (typeof h.pid === "number" && typeof h.host === "string" && typeof h.token === "string") {
      return { pid: h.pid, host: h.host, token: h.token };
    }
  } catch {
    // Missing, empty, a directory or not ours: no holder to name.
  }
  return null;
}

function describeHolder(lockPath: string): string {
  const h = readHolder(lockPath);
  return h ? `held by process ${h.pid} on ${h.host}` : "held by an unknown process";
}

function statOrNull(path: string): Stats | null {
  return statSync(path, { throwIfNoEntry: false }) ?? null;
}

function unlinkQuietly(path: string): void {
  try {
    unlinkSync(path);
  } catch {
    // Already gone.
  }
}

function errorCode(err: unknown): string | undefined {
  return (err as { code?: string } | null)?.code;
}
