import { afterEach, beforeEach, describe, expect, test } from "bun:test";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { displayPrefix, hashKey } from "../../keys/secret.ts";
import { BUCKET_MS, WINDOW_MS, windowUsage } from "../../time/buckets.ts";
import type { Storage } from "../types.ts";
import { openFileStorage } from "./index.ts";
import { legacyId } from "./records.ts";

// A file as the old gateway left it: keys in clear, fixed usage windows, a
// rolling cache on one key only, totals beyond 32 bits, fields of its own.

const T0 = Date.UTC(2026, 10, 28, 12, 0, 0);
const at = (t: number) => new Date(t).toISOString();
const ALICE = "sk-legacy-alice-0123456789abcdef";
const BOB = "bob-old-key-42";
const BIG = 2 ** 33 + 5;

function legacyFile() {
  return {
    keys: [
      {
        key: ALICE,
        name: "alice",
        model: "glm-4.5",
        token_limit_per_5h: BIG,
        expiry_date: "2027-06-30T00:00:00.000Z",
        created_at: "2025-01-10T09:00:00.000Z",
        last_used: at(T0 - 30 * 60_000),
        total_lifetime_tokens: BIG * 3,
        usage_windows: [{ window_start: at(T0 - 2 * 3600_000 - 60_000), tokens_used: 700 }],
        rolling_window_cache: {
          buckets: [
            { timestamp: T0 - 2 * 3600_000, tokens: 300 },
            { timestamp: T0 - 30 * 60_000, tokens: 400 },
          ],
          runningTotal: 700,
          lastUpdated: at(T0 - 30 * 60_000),
          windowDurationMs: WINDOW_MS,
          bucketSizeMs: BUCKET_MS,
        },
        team: "research",
      },
      {
        key: BOB,
        name: "bob",
        token_limit_per_5h: 1000,
        expiry_date: "2026-01-01",
        created_at: "2024-06-01T00:00:00Z",
        last_used: "",
        usage_windows: [{ window_start: at(T0 - 60 * 60_000 + 7_000), tokens_used: 50 }],
      },
    ],
    settings: { port: 3000, note: "kept by the old gateway" },
  };
}

describe("file storage: a legacy apikeys.json", () => {
  let dir: string;
  let path: string;
  let s: Storage;
  beforeEach(async () => {
    dir = mkdtempSync(join(tmpdir(), "tollgate-legacy-"));
    path = join(dir, "apikeys.json");
    writeFileSync(path, JSON.stringify(legacyFile(), null, 2));
    s = openFileStorage(path);
    await s.migrate();
  });
  afterEach(async () => {
    await s.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const file = () => JSON.parse(readFileSync(path, "utf8"));

  test("migrate validates an existing file and writes nothing", () => {
    expect(readFileSync(path, "utf8")).toBe(JSON.stringify(legacyFile(), null, 2));
  });

  test("keys are found by the hash of their plaintext, with everything the old gateway kept", async () => {
    const alice = await s.getKeyByHash(hashKey(ALICE));
    expect(alice).toEqual({
      id: legacyId(hashKey(ALICE)),
      keyHash: hashKey(ALICE),
      keyPrefix: displayPrefix(ALICE),
      name: "alice",
      tokenLimit: BIG,
      model: "glm-4.5",
      expiresAt: Date.parse("2027-06-30T00:00:00.000Z"),
      maxConcurrent: null,
      weeklyLimit: null,
      allowedModels: null,
      disabled: false,
      createdAt: Date.parse("2025-01-10T09:00:00.000Z"),
      updatedAt: Date.parse("2025-01-10T09:00:00.000Z"),
      lastUsedAt: T0 - 30 * 60_000,
      totalTokens: BIG * 3,
      totalRequests: 0,
      revokedAt: null,
    });
    const bob = await s.getKeyByHash(hashKey(BOB));
    expect(bob).toMatchObject({ name: "bob", model: null, lastUsedAt: null, totalTokens: 0 });
    expect(await s.getKeyByHash(hashKey("bob-old-key-4"))).toBeNull();
    expect((await s.findKeys("bob")).map((k) => k.keyHash)).toEqual([hashKey(BOB)]);
    const expired = await s.listKeys({ limit: 10, offset: 0, now: T0, status: "expired" });
    expect(expired.keys.map((k) => k.name)).toEqual(["bob"]);
  });

  test("window usage comes from the rolling cache, or from the old windows without one", async () => {
    const alice = await s.getKeyByHash(hashKey(ALICE));
    const buckets = await s.usageSince(alice?.id ?? "", T0 - WINDOW_MS);
    expect(buckets).toEqual([
      { bucketStart: T0 - 2 * 3600_000, tokens: 300, requests: 0 },
      { bucketStart: T0 - 30 * 60_000, tokens: 400, requests: 0 },
    ]);
    expect(windowUsage(buckets, T0)).toBe(700);
    const bob = await s.getKeyByHash(hashKey(BOB));
    expect(await s.usageSince(bob?.id ?? "", 0)).toEqual([
      { bucketStart: T0 - 60 * 60_000, tokens: 50, requests: 0 },
    ]);
  });

  test("usage is written back in both of the old gateway's forms, keeping everything else", async () => {
    const alice = await s.getKeyByHash(hashKey(ALICE));
    const id = alice?.id ?? "";
    await s.applyUsage({
      instanceId: "gw1",
      firstSeq: 3,
      lastSeq: 3,
      keys: [
        {
          keyId: id,
          tokens: 25,
          requests: 2,
          lastUsedAt: T0 + 60_000,
          buckets: [{ bucketStart: T0, tokens: 25, requests: 2 }],
        },
      ],
    });
    const after = file();
    const [a, b] = after.keys;
    const before = legacyFile();
    // The plaintext stays, for a rollback; fields we do not know stay too.
    expect(a.key).toBe(ALICE);
    expect(a.team).toBe("research");
    expect(after.settings).toEqual(before.settings);
    expect(b).toEqual(before.keys[1]);
    expect(after.tollgate_checkpoints).toEqual({ gw1: 3 });
    expect(a.total_lifetime_tokens).toBe(BIG * 3 + 25);
    expect(a.total_requests).toBe(2);
    expect(a.last_used).toBe(at(T0 + 60_000));
    // The old gateway's current window (started 2 h ago) takes the tokens.
    expect(a.usage_windows).toEqual([
      { window_start: at(T0 - 2 * 3600_000 - 60_000), tokens_used: 725 },
    ]);
    expect(a.rolling_window_cache).toMatchObject({
      buckets: [
        { timestamp: T0 - 2 * 3600_000, tokens: 300 },
        { timestamp: T0 - 30 * 60_000, tokens: 400 },
        { timestamp: T0, tokens: 25, requests: 2 },
      ],
      runningTotal: 725,
      windowDurationMs: WINDOW_MS,
      bucketSizeMs: BUCKET_MS,
    });
    expect(windowUsage(await s.usageSince(id, 0), T0 + 60_000)).toBe(725);
  });

  test("a key without a rolling cache keeps its window usage when the cache is created", async () => {
    const bob = await s.getKeyByHash(hashKey(BOB));
    const late = T0 + 3 * 3600_000;
    await s.applyUsage({
      instanceId: "gw1",
      firstSeq: 1,
      lastSeq: 1,
      keys: [
        {
          keyId: bob?.id ?? "",
          tokens: 10,
          requests: 1,
          lastUsedAt: late + 1000,
          buckets: [{ bucketStart: late, tokens: 10, requests: 1 }],
        },
      ],
    });
    const b = file().keys[1];
    expect(b.key).toBe(BOB);
    expect(b.rolling_window_cache.buckets).toEqual([
      { timestamp: T0 - 60 * 60_000, tokens: 50 },
      { timestamp: late, tokens: 10, requests: 1 },
    ]);
    // The old window started less than 5 h before: it is still current.
    expect(b.usage_windows).toEqual([
      { window_start: at(T0 - 60 * 60_000 + 7_000), tokens_used: 60 },
    ]);
    // 5 hours on, old buckets are dropped and the old window gives way to a new one.
    const later = late + WINDOW_MS;
    await s.applyUsage({
      instanceId: "gw1",
      firstSeq: 2,
      lastSeq: 2,
      keys: [
        {
          keyId: bob?.id ?? "",
          tokens: 1,
          requests: 1,
          lastUsedAt: later,
          buckets: [{ bucketStart: later, tokens: 1, requests: 1 }],
        },
      ],
    });
    const c = file().keys[1];
    expect(c.rolling_window_cache.buckets).toEqual([{ timestamp: later, tokens: 1, requests: 1 }]);
    expect(c.rolling_window_cache.runningTotal).toBe(1);
    expect(c.usage_windows).toEqual([{ window_start: at(later), tokens_used: 1 }]);
    expect((await s.getKeyById(bob?.id ?? ""))?.totalTokens).toBe(11);
  });

  test("rotating a legacy key drops its plaintext and keeps its id", async () => {
    const id = legacyId(hashKey(ALICE));
    const r = await s.rotateKey(id, hashKey("pk_new"), "pk_new", T0);
    expect(r?.id).toBe(id);
    expect(await s.getKeyById(id)).toEqual(r);
    const a = file().keys[0];
    expect(a.key).toBeUndefined();
    expect(a).toMatchObject({ id, key_sha256: hashKey("pk_new"), key_prefix: "pk_new" });
    expect(readFileSync(path, "utf8")).not.toContain(ALICE);
    expect(await s.getKeyByHash(hashKey(ALICE))).toBeNull();
  });

  test("pruning history edits what usage is read from, keeps the old windows beside a cache and the totals", async () => {
    // alice: cache buckets 2 h and 30 min ago (windows beside them); bob: one old window.
    const cutoff = T0 - 45 * 60_000;
    expect(await s.pruneUsage(cutoff, 100)).toBe(2);
    const [alice, bob] = file().keys;
    expect(alice.rolling_window_cache.buckets).toEqual([
      { timestamp: T0 - 30 * 60_000, tokens: 400 },
    ]);
    expect(alice.rolling_window_cache.runningTotal).toBe(400);
    expect(alice.usage_windows).toEqual(legacyFile().keys[0]?.usage_windows);
    expect(alice.total_lifetime_tokens).toBe(BIG * 3);
    expect(bob.usage_windows).toEqual([]);
    expect(file().settings).toEqual(legacyFile().settings);
    // Nothing left to prune: the file is not rewritten.
    const text = readFileSync(path, "utf8");
    expect(await s.pruneUsage(cutoff, 100)).toBe(0);
    expect(readFileSync(path, "utf8")).toBe(text);
  });
});
