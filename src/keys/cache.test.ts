import { afterEach, beforeEach, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { silentLogger } from "../log.ts";
import { StorageHealth } from "../storage/health.ts";
import { openSqliteStorage } from "../storage/sqlite/index.ts";
import type { Storage } from "../storage/types.ts";
import {
  defaultKeyCacheOptions,
  KeyCache,
  type KeyRefreshOptions,
  StorageUnavailableError,
  UNVERIFIED_PREFIX,
} from "./cache.ts";
import { hashKey } from "./secret.ts";
import { createKey } from "./service.ts";

let dir: string;
let real: Storage;
let now: number;
const clock = () => now;

/** The real storage, with lookups that can be made to fail or to hang. */
function controllable(s: Storage) {
  const ctl = {
    mode: "ok" as "ok" | "down" | "slow",
    lookups: 0,
    /** The hashes each batch read (a refresh round) asked for. */
    batches: [] as string[][],
    /** Runs while a batch read is under way, once it has read. */
    afterRead: async () => {},
    /** Runs while a one-key lookup is under way, once it has read. */
    afterLookup: async () => {},
  };
  const wrapped: Storage = Object.create(s);
  wrapped.getKeyByHash = async (h: string) => {
    ctl.lookups++;
    if (ctl.mode === "down") throw new Error("connection refused");
    if (ctl.mode === "slow") await Bun.sleep(2000);
    const found = await s.getKeyByHash(h);
    await ctl.afterLookup();
    return found;
  };
  wrapped.getKeysByHash = async (hashes: readonly string[]) => {
    ctl.batches.push([...hashes].sort());
    if (ctl.mode === "down") throw new Error("connection refused");
    const found = await s.getKeysByHash(hashes);
    await ctl.afterRead();
    return found;
  };
  wrapped.ping = async () => {
    if (ctl.mode === "down") throw new Error("connection refused");
  };
  return { storage: wrapped, ctl };
}

beforeEach(async () => {
  now = 1_000_000;
  dir = mkdtempSync(join(tmpdir(), "tollgate-cache-"));
  real = openSqliteStorage(join(dir, "t.db"));
  await real.migrate();
});
afterEach(async () => {
  await real.close();
  rmSync(dir, { recursive: true, force: true });
});

function setup(unknownDuringOutage: "reject" | "allow" = "reject") {
  const { storage, ctl } = controllable(real);
  const health = new StorageHealth(storage, silentLogger(), {
    probeMs: 60_000,
    backoffMs: 10,
    maxBackoffMs: 20,
    pingTimeoutMs: 500,
  });
  const seen: string[] = [];
  const cache = new KeyCache(
    storage,
    clock,
    { ...defaultKeyCacheOptions, unknownDuringOutage },
    health,
    (r) => seen.push(r),
  );
  return { cache, ctl, health, seen };
}

describe("KeyCache", () => {
  test("one database lookup per key per TTL, for known and unknown keys alike", async () => {
    const { secret } = await createKey(real, { name: "a", tokenLimit: 1 }, now);
    const { cache, ctl, seen } = setup();
    for (let i = 0; i < 5; i++) expect((await cache.lookup(secret))?.name).toBe("a");
    for (let i = 0; i < 5; i++) expect(await cache.lookup("pk_made_up")).toBeNull();
    expect(ctl.lookups).toBe(2);
    now += 1000;
    await cache.lookup(secret);
    expect(ctl.lookups).toBe(3);
    expect(seen.filter((s) => s === "hit")).toHaveLength(8);
  });

  test("concurrent lookups of one key share one query", async () => {
    const { secret } = await createKey(real, { name: "a", tokenLimit: 1 }, now);
    const { cache, ctl } = setup();
    await Promise.all(Array.from({ length: 50 }, () => cache.lookup(secret)));
    expect(ctl.lookups).toBe(1);
  });

  test("a revoked key is refused once the TTL has passed, not before", async () => {
    const { record, secret } = await createKey(real, { name: "a", tokenLimit: 1 }, now);
    const { cache } = setup();
    await cache.lookup(secret);
    await real.deleteKey(record.id);
    // Within the TTL the cached record still answers…
    now += defaultKeyCacheOptions.ttlMs - 1;
    expect(await cache.lookup(secret)).not.toBeNull();
    // …and once it has passed the revocation is seen, without any invalidate.
    now += 1;
    expect(await cache.lookup(secret)).toBeNull();
  });

  test("invalidate drops a revoked key at once, before the TTL", async () => {
    const { record, secret } = await createKey(real, { name: "a", tokenLimit: 1 }, now);
    const { cache } = setup();
    await cache.lookup(secret);
    await real.deleteKey(record.id);
    expect(await cache.lookup(secret)).not.toBeNull();
    cache.invalidate(record.id);
    expect(await cache.lookup(secret)).toBeNull();
  });

  test("database out: known keys keep working from memory; unknown ones are refused", async () => {
    const { secret } = await createKey(real, { name: "known", tokenLimit: 1 }, now);
    const { cache, ctl, health } = setup("reject");
    await cache.lookup(secret);
    ctl.mode = "down";
    now += 5000;
    expect((await cache.lookup(secret))?.name).toBe("known");
    expect(health.degraded).toBe(true);
    const before = ctl.lookups;
    expect((await cache.lookup(secret))?.name).toBe("known");
    // While degraded the database is not asked per request.
    expect(ctl.lookups).toBe(before);
    await expect(cache.lookup("pk_never_seen")).rejects.toBeInstanceOf(StorageUnavailableError);
    health.stop();
  });

  test("database out, unknown keys allowed: let through as unverified, resolved later by hash", async () => {
    const { cache, ctl, health } = setup("allow");
    ctl.mode = "down";
    health.reportFailure(new Error("down"));
    const k = await cache.lookup("pk_someone");
    expect(k?.id).toBe(`${UNVERIFIED_PREFIX}${hashKey("pk_someone")}`);
    expect(k?.keyPrefix).not.toContain("someone");
    health.stop();
  });

  test("a slow refresh does not hold a known key's request", async () => {
    const { secret } = await createKey(real, { name: "a", tokenLimit: 1 }, now);
    const { cache, ctl, seen } = setup();
    await cache.lookup(secret);
    ctl.mode = "slow";
    now += 5000;
    const started = performance.now();
    expect((await cache.lookup(secret))?.name).toBe("a");
    expect(performance.now() - started).toBeLessThan(1000);
    expect(seen.at(-1)).toBe("stale");
  });

  test("a flood of unknown keys never evicts a known key; known keys go least recently used first", async () => {
    const a = (await createKey(real, { name: "a", tokenLimit: 1 }, now)).secret;
    const b = (await createKey(real, { name: "b", tokenLimit: 1 }, now)).secret;
    const c = (await createKey(real, { name: "c", tokenLimit: 1 }, now)).secret;
    const { storage, ctl } = controllable(real);
    const cache = new KeyCache(storage, clock, {
      ...defaultKeyCacheOptions,
      maxEntries: 2,
      maxMisses: 3,
    });
    await cache.lookup(a);
    await cache.lookup(b);
    for (let i = 0; i < 50; i++) expect(await cache.lookup(`pk_flood_${i}`)).toBeNull();
    expect(cache.knownKeys).toBe(2);
    expect(cache.missingKeys).toBe(3);
    expect(cache.knows(a) && cache.knows(b)).toBe(true);
    // a used again, so b is now the least recently used and makes room for c.
    await cache.lookup(a);
    await cache.lookup(c);
    expect(cache.knows(a)).toBe(true);
    expect(cache.knows(b)).toBe(false);
    expect(cache.knows(c)).toBe(true);
    // Database out: both remembered keys still answer from memory.
    ctl.mode = "down";
    now += 5000;
    expect((await cache.lookup(a))?.name).toBe("a");
    expect((await cache.lookup(c))?.name).toBe("c");
  });
});

describe("KeyCache refresh rounds", () => {
  const TTL = defaultKeyCacheOptions.ttlMs;

  /** Key "a", looked up twice with the rounds started: a key in use, as the rounds see it. */
  async function keyInUse(options: Partial<KeyRefreshOptions> = { everyMs: 60_000 }) {
    const a = await createKey(real, { name: "a", tokenLimit: 1 }, now);
    const fx = setup();
    fx.cache.start(options);
    await fx.cache.lookup(a.secret);
    await fx.cache.lookup(a.secret);
    return { a, ...fx };
  }

  test("keys in use are re-read in one query per round, and their requests never wait for the database", async () => {
    const keys = await Promise.all(
      ["a", "b", "c"].map((name) => createKey(real, { name, tokenLimit: 1 }, now)),
    );
    const { cache, ctl } = setup();
    cache.start({ everyMs: 60_000 });
    for (const k of keys) await cache.lookup(k.secret);
    // Seen once more: in use, so the rounds keep it fresh.
    for (const k of keys) await cache.lookup(k.secret);
    expect(ctl.lookups).toBe(3);
    for (let i = 0; i < 4; i++) {
      now += TTL / 2;
      await cache.refreshActive();
      for (const k of keys) expect((await cache.lookup(k.secret))?.name).toBe(k.record.name);
    }
    // Two seconds on, past the TTL twice over: no per-key lookup since the first ones.
    expect(ctl.lookups).toBe(3);
    expect(ctl.batches).toHaveLength(4);
    expect(ctl.batches[0]).toEqual(keys.map((k) => hashKey(k.secret)).sort());
    cache.stop();
  });

  test("a change made elsewhere is obeyed after the next round: revoked, rotated, changed", async () => {
    const a = await createKey(real, { name: "a", tokenLimit: 1 }, now);
    const b = await createKey(real, { name: "b", tokenLimit: 1 }, now);
    const c = await createKey(real, { name: "c", tokenLimit: 1 }, now);
    const { cache, ctl } = setup();
    cache.start({ everyMs: 60_000 });
    for (const k of [a, b, c, a, b, c]) await cache.lookup(k.secret);
    await real.revokeKey(a.record.id, now);
    await real.rotateKey(b.record.id, hashKey("pk_rotated_b"), "pk_rotated", now);
    await real.updateKey(c.record.id, { tokenLimit: 99, disabled: true }, now);
    now += 10;
    await cache.refreshActive();
    const before = ctl.lookups;
    expect(await cache.lookup(a.secret)).toBeNull();
    expect(await cache.lookup(b.secret)).toBeNull();
    expect(await cache.lookup(c.secret)).toMatchObject({ tokenLimit: 99, disabled: true });
    // Known from the round: the refused secrets cost no lookup of their own.
    expect(ctl.lookups).toBe(before);
    expect((await cache.lookup("pk_rotated_b"))?.id).toBe(b.record.id);
    cache.stop();
  });

  test("a key not used lately leaves the rounds, and is looked up by its next request", async () => {
    const { a, cache, ctl } = await keyInUse({ everyMs: 60_000, activeMs: 10_000 });
    now += 10_000;
    await cache.refreshActive();
    expect(ctl.batches).toHaveLength(0);
    expect(await cache.lookup(a.secret)).not.toBeNull();
    expect(ctl.lookups).toBe(2);
    cache.stop();
  });

  test("a failed round is reported, and requests past the TTL look their key up themselves", async () => {
    const { a, cache, ctl, health } = await keyInUse();
    const failures: unknown[] = [];
    health.reportFailure = (err: unknown) => void failures.push(err);
    ctl.mode = "down";
    now += TTL / 2;
    await cache.refreshActive();
    expect(failures).toHaveLength(1);
    ctl.mode = "ok";
    now += TTL / 2;
    expect(await cache.lookup(a.secret)).not.toBeNull();
    expect(ctl.lookups).toBe(2);
    cache.stop();
  });

  test("a round's answer never brings back a key dropped while it ran", async () => {
    const { a, cache, ctl } = await keyInUse();
    // Changed through this process after the round read the old record.
    ctl.afterRead = async () => {
      await real.updateKey(a.record.id, { tokenLimit: 5 }, now);
      cache.invalidate(a.record.id);
    };
    now += 10;
    await cache.refreshActive();
    expect(cache.knows(a.secret)).toBe(false);
    expect((await cache.lookup(a.secret))?.tokenLimit).toBe(5);
    cache.stop();
  });

  test("a round never overwrites a record read after its query was sent", async () => {
    const { a, cache, ctl } = await keyInUse();
    now += 600;
    // The round has read the record with limit 1; meanwhile the key changes
    // and a request, past the TTL, reads the new record itself.
    ctl.afterRead = async () => {
      await real.updateKey(a.record.id, { tokenLimit: 5 }, now);
      now += 400;
      expect((await cache.lookup(a.secret))?.tokenLimit).toBe(5);
    };
    await cache.refreshActive();
    expect((await cache.lookup(a.secret))?.tokenLimit).toBe(5);
    cache.stop();
  });

  test("a round's record is as old as its query: trusted for the TTL from when it was sent", async () => {
    const { a, cache, ctl } = await keyInUse();
    now += 500;
    const sentAt = now;
    // A slow answer: 300 ms pass between the query and its answer.
    ctl.afterRead = async () => {
      now += 300;
    };
    await cache.refreshActive();
    now = sentAt + TTL - 1;
    await cache.lookup(a.secret);
    expect(ctl.lookups).toBe(1);
    now = sentAt + TTL;
    await cache.lookup(a.secret);
    expect(ctl.lookups).toBe(2);
    cache.stop();
  });

  test("a lookup under way when its key is changed here does not keep the old record", async () => {
    const a = await createKey(real, { name: "a", tokenLimit: 1 }, now);
    const { cache, ctl } = setup();
    // The change (and its invalidate) lands after the lookup read the old record.
    ctl.afterLookup = async () => {
      ctl.afterLookup = async () => {};
      await real.updateKey(a.record.id, { tokenLimit: 5 }, now);
      cache.invalidate(a.record.id);
    };
    expect((await cache.lookup(a.secret))?.tokenLimit).toBe(1);
    expect(cache.knows(a.secret)).toBe(false);
    expect((await cache.lookup(a.secret))?.tokenLimit).toBe(5);
  });

  test("a round that does not answer is given up on: the next one goes ahead", async () => {
    const { cache, ctl } = await keyInUse({ everyMs: 60_000, timeoutMs: 50 });
    ctl.afterRead = () => Bun.sleep(300);
    await cache.refreshActive();
    ctl.afterRead = async () => {};
    await cache.refreshActive();
    expect(ctl.batches).toHaveLength(2);
    cache.stop();
  });

  test("no round while the database is out: known keys are served from memory", async () => {
    const { a, cache, ctl, health } = await keyInUse();
    ctl.mode = "down";
    health.reportFailure(new Error("down"));
    await cache.refreshActive();
    expect(ctl.batches).toHaveLength(0);
    now += 5000;
    expect((await cache.lookup(a.secret))?.name).toBe("a");
    cache.stop();
    health.stop();
  });

  test("a round begun before the database recovered does not report its failure afterwards", async () => {
    const { cache, ctl, health } = await keyInUse();
    // The round's query is sent; the database goes out and comes back; only
    // then does that query fail, as one on a connection the restart closed.
    ctl.afterRead = async () => {
      health.reportFailure(new Error("down"));
      for (let i = 0; i < 200 && health.degraded; i++) await Bun.sleep(5);
      expect(health.degraded).toBe(false);
      throw new Error("connection closed");
    };
    now += 10;
    await cache.refreshActive();
    expect(health.degraded).toBe(false);
    cache.stop();
    health.stop();
  });

  test("rounds run on their own every interval until stopped", async () => {
    const { cache, ctl } = await keyInUse({ everyMs: 20 });
    await Bun.sleep(120);
    expect(ctl.batches.length).toBeGreaterThanOrEqual(2);
    cache.stop();
    const seen = ctl.batches.length;
    await Bun.sleep(80);
    expect(ctl.batches.length).toBe(seen);
  });
});
