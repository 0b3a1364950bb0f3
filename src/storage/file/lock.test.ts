import { afterEach, beforeEach, describe, expect, test } from "bun:test";
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  utimesSync,
  writeFileSync,
} from "node:fs";
import { hostname, tmpdir } from "node:os";
import { join } from "node:path";
import { openFileStorage } from "./index.ts";
import { LockTimeoutError, withFileLock } from "./lock.ts";

const QUICK = { waitMs: 150, staleMs: 10_000, baseMs: 1, maxMs: 10 };

describe("the lock file shared by processes", () => {
  let dir: string;
  let path: string;
  let lock: string;
  beforeEach(async () => {
    dir = mkdtempSync(join(tmpdir(), "tollgate-lock-"));
    path = join(dir, "apikeys.json");
    lock = `${path}.lock`;
    await openFileStorage(path).migrate();
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  const holder = (pid: number) =>
    writeFileSync(lock, JSON.stringify({ pid, host: hostname(), token: "theirs" }));
  const age = (p: string, ms: number) => {
    const t = (Date.now() - ms) / 1000;
    utimesSync(p, t, t);
  };
  const charge = (s = openFileStorage(path, QUICK)) =>
    s.applyUsage({ instanceId: "i", firstSeq: 1, lastSeq: 1, keys: [] });

  test("holders never overlap, however many wait", async () => {
    let inside = 0;
    let most = 0;
    await Promise.all(
      Array.from({ length: 20 }, () =>
        withFileLock(lock, async () => {
          most = Math.max(most, ++inside);
          await Bun.sleep(1);
          inside--;
        }),
      ),
    );
    expect(most).toBe(1);
    expect(existsSync(lock)).toBe(false);
  });

  test("a lock left by a process that has exited is broken at once", async () => {
    const gone = Bun.spawn([process.execPath, "-e", ""]);
    await gone.exited;
    holder(gone.pid);
    const started = Date.now();
    await charge(openFileStorage(path));
    expect(Date.now() - started).toBeLessThan(2000);
    expect(existsSync(lock)).toBe(false);
  });

  test("a fresh lock of a live process is waited for, then reported, and nothing is written", async () => {
    holder(process.ppid);
    const before = readFileSync(path, "utf8");
    const err = await charge().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(LockTimeoutError);
    expect((err as Error).message).toContain(`held by process ${process.ppid}`);
    expect(readFileSync(path, "utf8")).toBe(before);
    expect(existsSync(lock)).toBe(true);
  });

  test("a lock older than the stale age is broken even if its process lives", async () => {
    holder(process.ppid);
    age(lock, 20_000);
    await charge();
    expect(existsSync(lock)).toBe(false);
  });

  test("a lock naming this process that it does not hold (pid reused after a crash) is broken", async () => {
    holder(process.pid);
    await charge();
    expect(existsSync(lock)).toBe(false);
  });

  test("the old gateway's lock directory is respected while fresh, removed once stale", async () => {
    mkdirSync(lock);
    expect(await charge().catch((e: unknown) => e)).toBeInstanceOf(LockTimeoutError);
    age(lock, 20_000);
    await charge();
    expect(existsSync(lock)).toBe(false);
    expect(await openFileStorage(path).checkpoint("i")).toBe(1);
  });
});
