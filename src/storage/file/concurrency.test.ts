import { afterEach, beforeEach, describe, expect, test } from "bun:test";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { createKey } from "../../keys/service.ts";
import { BUCKET_MS } from "../../time/buckets.ts";
import type { KeyRecord, Storage, UsageBatch } from "../types.ts";
import { openFileStorage } from "./index.ts";

// The old gateway lost usage under load. Here several writers in one process
// and several processes charge the same file at once, and every token must
// arrive exactly once.

const T0 = Date.UTC(2026, 10, 28, 12, 0, 0);
const ROUNDS = 40;

/** Batch number `n` of an instance: n tokens for each key, in one of three buckets. */
function batch(instanceId: string, n: number, keyIds: string[]): UsageBatch {
  return {
    instanceId,
    firstSeq: n,
    lastSeq: n,
    keys: keyIds.map((keyId) => ({
      keyId,
      tokens: n,
      requests: 1,
      lastUsedAt: T0 + n,
      buckets: [{ bucketStart: T0 + (n % 3) * BUCKET_MS, tokens: n, requests: 1 }],
    })),
  };
}

const rounds = (instanceId: string, keyIds: string[]) =>
  Array.from({ length: ROUNDS }, (_, i) => batch(instanceId, i + 1, keyIds));
const perWriter = (ROUNDS * (ROUNDS + 1)) / 2;

// A writer in a process of its own: opens the file, says it is ready, waits
// for the start signal so that all writers overlap, then sends its batches.
const WRITER = `
import { existsSync, writeFileSync } from "node:fs";
import { openFileStorage } from ${JSON.stringify(fileURLToPath(new URL("./index.ts", import.meta.url)))};
const [path, instanceId, batchesJson] = process.argv.slice(2);
const storage = openFileStorage(path);
writeFileSync(path + ".ready-" + instanceId, "");
while (!existsSync(path + ".go")) await Bun.sleep(1);
await Promise.all(JSON.parse(batchesJson).map((b) => storage.applyUsage(b)));
await storage.close();
`;

describe("file storage under concurrent writers", () => {
  let dir: string;
  let path: string;
  let s: Storage;
  let keys: KeyRecord[];
  beforeEach(async () => {
    dir = mkdtempSync(join(tmpdir(), "tollgate-concurrent-"));
    path = join(dir, "apikeys.json");
    s = openFileStorage(path);
    await s.migrate();
    keys = [];
    for (const name of ["a", "b"])
      keys.push((await createKey(s, { name, tokenLimit: 1 }, T0)).record);
  });
  afterEach(async () => {
    await s.close();
    rmSync(dir, { recursive: true, force: true });
  });

  async function expectExact(writers: string[]): Promise<void> {
    // Valid JSON on disk, read by a fresh instance that has no cache.
    JSON.parse(readFileSync(path, "utf8"));
    const fresh = openFileStorage(path);
    for (const k of keys) {
      const rec = await fresh.getKeyById(k.id);
      expect(rec?.totalTokens).toBe(writers.length * perWriter);
      expect(rec?.totalRequests).toBe(writers.length * ROUNDS);
      const buckets = await fresh.usageSince(k.id, 0);
      expect(buckets).toHaveLength(3);
      expect(buckets.reduce((sum, b) => sum + b.tokens, 0)).toBe(writers.length * perWriter);
      expect(buckets.reduce((sum, b) => sum + b.requests, 0)).toBe(writers.length * ROUNDS);
    }
    for (const w of writers) expect(await fresh.checkpoint(w)).toBe(ROUNDS);
    // Neither temporary files nor the lock are left behind.
    const left = readdirSync(dir).filter((f) => f.endsWith(".tmp") || f.includes(".lock"));
    expect(left).toEqual([]);
  }

  test("many batches at once from two instances in one process, with key edits between", async () => {
    const cli = openFileStorage(path);
    const ids = keys.map((k) => k.id);
    const work: Promise<unknown>[] = [];
    for (const [i, b] of rounds("server", ids).entries()) {
      work.push(s.applyUsage(b));
      work.push(cli.applyUsage(rounds("cli", ids)[i] as UsageBatch));
      if (i % 10 === 0) work.push(cli.updateKey(ids[0] as string, { name: `a${i}` }, T0 + i));
      if (i % 10 === 5) work.push(createKey(cli, { name: `extra${i}`, tokenLimit: 1 }, T0));
    }
    await Promise.all(work);
    await cli.close();
    await expectExact(["server", "cli"]);
    expect(await s.countKeys()).toBe(2 + ROUNDS / 10);
  });

  test("several processes and this one charge the same file at the same time", async () => {
    const script = join(dir, "writer.ts");
    writeFileSync(script, WRITER);
    const ids = keys.map((k) => k.id);
    const others = ["p1", "p2"];
    const procs = others.map((id) =>
      Bun.spawn([process.execPath, script, path, id, JSON.stringify(rounds(id, ids))], {
        stdout: "pipe",
        stderr: "pipe",
      }),
    );
    // Generous for two busy cores; but the writers must all be ready, or
    // they would not overlap and the test would prove nothing.
    const deadline = Date.now() + 20_000;
    const ready = () => others.every((id) => existsSync(`${path}.ready-${id}`));
    while (!ready() && Date.now() < deadline) await Bun.sleep(2);
    if (!ready()) {
      for (const p of procs) p.kill();
      throw new Error(
        "the writer processes were not ready in time: their writes would not overlap",
      );
    }
    writeFileSync(`${path}.go`, "");
    await Promise.all(rounds("here", ids).map((b) => s.applyUsage(b)));
    for (const p of procs) {
      const code = await p.exited;
      if (code !== 0) throw new Error(`writer failed: ${await new Response(p.stderr).text()}`);
    }
    await expectExact([...others, "here"]);
  });
});
