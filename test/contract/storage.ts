import { afterEach, beforeEach, describe, expect, test } from "bun:test";
import { hashKey } from "../../src/keys/secret.ts";
import { createKey } from "../../src/keys/service.ts";
import type { Storage } from "../../src/storage/types.ts";
import { BUCKET_MS } from "../../src/time/buckets.ts";
import { historyContractTests } from "./storage-history.ts";
import { modelUsageContractTests } from "./storage-model-usage.ts";
import { revokeContractTests } from "./storage-revoke.ts";

export interface StorageFixture {
  storage: Storage;
  /** Removes everything the fixture made. */
  cleanup(): Promise<void>;
}

const T0 = Date.UTC(2026, 10, 28, 12, 0, 0);

export interface ContractOptions {
  /**
   * Why this backend serves one connection at a time where production has
   * several (PGlite): the tests of concurrent writers are then skipped,
   * loudly, as they could show neither a lost update nor a deadlock.
   */
  oneConnection?: string;
}

/**
 * The behaviour every storage backend must have. Each test gets a fresh,
 * migrated database from `make`, and it is removed afterwards.
 */
export function storageContract(
  name: string,
  make: () => Promise<StorageFixture>,
  options: ContractOptions = {},
): void {
  const concurrent = options.oneConnection ? test.skip : test;
  if (options.oneConnection) {
    process.stderr.write(
      `\n*** SKIPPING "concurrent batches from several instances" on ${name}: ${options.oneConnection} ***\n`,
    );
  }
  describe(`storage contract: ${name}`, () => {
    let fx: StorageFixture;
    let s: Storage;
    beforeEach(async () => {
      fx = await make();
      s = fx.storage;
    });
    afterEach(async () => {
      await fx.cleanup();
    });

    test("a created key is found by its hash, never stored in clear", async () => {
      const { record, secret } = await createKey(s, { name: "alice", tokenLimit: 1000 }, T0);
      expect(record.keyHash).toBe(hashKey(secret));
      expect(JSON.stringify(record)).not.toContain(secret);
      expect(record.keyPrefix).toBe(secret.slice(0, 10));
      expect(await s.getKeyByHash(hashKey(secret))).toEqual(record);
      expect(await s.getKeyByHash(hashKey(`${secret}x`))).toBeNull();
      expect(await s.getKeyById(record.id)).toEqual(record);
      expect(record).toMatchObject({
        name: "alice",
        tokenLimit: 1000,
        model: null,
        expiresAt: null,
        maxConcurrent: null,
        weeklyLimit: null,
        allowedModels: null,
        disabled: false,
        createdAt: T0,
        lastUsedAt: null,
        totalTokens: 0,
        totalRequests: 0,
      });
    });

    test("keys are read by many hashes at once: the ones that exist, as stored", async () => {
      const a = await createKey(s, { name: "a", tokenLimit: 1 }, T0);
      const b = await createKey(s, { name: "b", tokenLimit: 2 }, T0);
      await createKey(s, { name: "not asked for", tokenLimit: 3 }, T0);
      const found = await s.getKeysByHash([
        hashKey(a.secret),
        hashKey("pk_unknown"),
        hashKey(b.secret),
      ]);
      expect(found.sort((x, y) => x.name.localeCompare(y.name))).toEqual([a.record, b.record]);
      expect(await s.getKeysByHash([])).toEqual([]);
      // Past one chunk of the list: every key is still found, once.
      const many = [...Array.from({ length: 600 }, (_, i) => hashKey(`pk_none_${i}`))];
      many.splice(550, 0, hashKey(a.secret));
      expect((await s.getKeysByHash(many)).map((k) => k.id)).toEqual([a.record.id]);
      // A rotated key is found by its new hash only; a revoked one not at all.
      await s.rotateKey(b.record.id, hashKey("pk_rotated"), "pk_rotated", T0 + 1);
      await s.revokeKey(a.record.id, T0 + 2);
      const after = await s.getKeysByHash([
        hashKey(a.secret),
        hashKey(b.secret),
        hashKey("pk_rotated"),
      ]);
      expect(after.map((k) => k.id)).toEqual([b.record.id]);
    });

    test("two keys cannot share a hash", async () => {
      const base = {
        keyPrefix: "pk_x",
        name: "a",
        tokenLimit: 1,
        model: null,
        expiresAt: null,
        maxConcurrent: null,
        weeklyLimit: null,
        allowedModels: null,
        createdAt: T0,
      };
      await s.createKey({ ...base, id: "k1", keyHash: "h" });
      await expect(s.createKey({ ...base, id: "k2", keyHash: "h" })).rejects.toThrow();
      expect(await s.countKeys()).toBe(1);
    });

    test("update, rotate and delete", async () => {
      const { record, secret } = await createKey(s, { name: "bob", tokenLimit: 10 }, T0);
      const u = await s.updateKey(
        record.id,
        { name: "robert", tokenLimit: 20, model: "glm-4.5", expiresAt: T0 + 1000, disabled: true },
        T0 + 5,
      );
      expect(u).toMatchObject({
        name: "robert",
        tokenLimit: 20,
        model: "glm-4.5",
        expiresAt: T0 + 1000,
        disabled: true,
        updatedAt: T0 + 5,
      });
      expect((await s.updateKey(record.id, { model: null }, T0 + 6))?.model).toBeNull();
      expect(await s.updateKey("missing", { name: "x" }, T0)).toBeNull();

      const r = await s.rotateKey(record.id, hashKey("pk_new"), "pk_new", T0 + 7);
      expect(r?.keyPrefix).toBe("pk_new");
      expect(await s.getKeyByHash(hashKey(secret))).toBeNull();
      expect((await s.getKeyByHash(hashKey("pk_new")))?.id).toBe(record.id);

      expect(await s.deleteKey(record.id)).toBe(true);
      expect(await s.deleteKey(record.id)).toBe(false);
      expect(await s.getKeyById(record.id)).toBeNull();
    });

    test("a key's own concurrency limit is kept, changed and removed", async () => {
      const { record, secret } = await createKey(
        s,
        { name: "busy", tokenLimit: 10, maxConcurrent: 3 },
        T0,
      );
      expect(record.maxConcurrent).toBe(3);
      expect((await s.getKeyByHash(hashKey(secret)))?.maxConcurrent).toBe(3);
      const listed = await s.listKeys({ limit: 10, offset: 0, now: T0 });
      expect(listed.keys.map((k) => k.maxConcurrent)).toEqual([3]);

      const raised = await s.updateKey(record.id, { maxConcurrent: 8 }, T0 + 1);
      expect(raised).toMatchObject({ maxConcurrent: 8, name: "busy", tokenLimit: 10 });
      // A change to another field leaves it alone.
      expect((await s.updateKey(record.id, { name: "busier" }, T0 + 2))?.maxConcurrent).toBe(8);
      const removed = await s.updateKey(record.id, { maxConcurrent: null }, T0 + 3);
      expect(removed?.maxConcurrent).toBeNull();
      expect((await s.getKeyById(record.id))?.maxConcurrent).toBeNull();
      // Rotation keeps whatever it is.
      await s.updateKey(record.id, { maxConcurrent: 2 }, T0 + 4);
      const rotated = await s.rotateKey(record.id, hashKey("pk_rot"), "pk_rot", T0 + 5);
      expect(rotated?.maxConcurrent).toBe(2);
    });

    test("a key's weekly limit is kept, changed and removed", async () => {
      const { record, secret } = await createKey(
        s,
        { name: "weekly", tokenLimit: 10, weeklyLimit: 5_000_000_000 },
        T0,
      );
      expect(record.weeklyLimit).toBe(5_000_000_000);
      expect((await s.getKeyByHash(hashKey(secret)))?.weeklyLimit).toBe(5_000_000_000);
      const listed = await s.listKeys({ limit: 10, offset: 0, now: T0 });
      expect(listed.keys.map((k) => k.weeklyLimit)).toEqual([5_000_000_000]);

      const lowered = await s.updateKey(record.id, { weeklyLimit: 70 }, T0 + 1);
      expect(lowered).toMatchObject({ weeklyLimit: 70, name: "weekly", tokenLimit: 10 });
      expect((await s.updateKey(record.id, { tokenLimit: 20 }, T0 + 2))?.weeklyLimit).toBe(70);
      const removed = await s.updateKey(record.id, { weeklyLimit: null }, T0 + 3);
      expect(removed?.weeklyLimit).toBeNull();
      expect((await s.getKeyById(record.id))?.weeklyLimit).toBeNull();
      await s.updateKey(record.id, { weeklyLimit: 0 }, T0 + 4);
      const rotated = await s.rotateKey(record.id, hashKey("pk_rotw"), "pk_rotw", T0 + 5);
      expect(rotated?.weeklyLimit).toBe(0);
    });

    test("a key's allowed models are kept, changed and cleared", async () => {
      const { record, secret } = await createKey(
        s,
        { name: "picky", tokenLimit: 10, allowedModels: ["glm-4.*", "glm-5"] },
        T0,
      );
      expect(record.allowedModels).toEqual(["glm-4.*", "glm-5"]);
      expect((await s.getKeyByHash(hashKey(secret)))?.allowedModels).toEqual(["glm-4.*", "glm-5"]);
      const listed = await s.listKeys({ limit: 10, offset: 0, now: T0 });
      expect(listed.keys.map((k) => k.allowedModels)).toEqual([["glm-4.*", "glm-5"]]);
      const changed = await s.updateKey(record.id, { allowedModels: ["glm-4.6"] }, T0 + 1);
      expect(changed?.allowedModels).toEqual(["glm-4.6"]);
      expect((await s.updateKey(record.id, { name: "picky2" }, T0 + 2))?.allowedModels).toEqual([
        "glm-4.6",
      ]);
      const cleared = await s.updateKey(record.id, { allowedModels: null }, T0 + 3);
      expect(cleared?.allowedModels).toBeNull();
      expect((await s.getKeyById(record.id))?.allowedModels).toBeNull();
    });

    test("findKeys matches id, prefix or name", async () => {
      const a = await createKey(s, { name: "team", tokenLimit: 1 }, T0);
      await createKey(s, { name: "team", tokenLimit: 1 }, T0);
      expect((await s.findKeys(a.record.id)).map((k) => k.id)).toEqual([a.record.id]);
      expect((await s.findKeys(a.record.keyPrefix)).map((k) => k.id)).toEqual([a.record.id]);
      expect(await s.findKeys("team")).toHaveLength(2);
      expect(await s.findKeys("nobody")).toHaveLength(0);
    });

    test("listing pages through keys and tells active from expired", async () => {
      for (let i = 0; i < 7; i++) {
        await createKey(
          s,
          { name: `k${i}`, tokenLimit: 1, expiresAt: i < 3 ? T0 - 1 : i === 3 ? null : T0 + 1000 },
          T0 + i,
        );
      }
      const first = await s.listKeys({ limit: 3, offset: 0, now: T0 });
      expect(first.total).toBe(7);
      expect(first.keys.map((k) => k.name)).toEqual(["k6", "k5", "k4"]);
      const rest = await s.listKeys({ limit: 10, offset: 3, now: T0 });
      expect(rest.keys.map((k) => k.name)).toEqual(["k3", "k2", "k1", "k0"]);
      const active = await s.listKeys({ limit: 10, offset: 0, now: T0, status: "active" });
      expect(active.keys.map((k) => k.name)).toEqual(["k6", "k5", "k4", "k3"]);
      expect(active.total).toBe(4);
      const expired = await s.listKeys({ limit: 10, offset: 0, now: T0, status: "expired" });
      expect(expired.keys.map((k) => k.name)).toEqual(["k2", "k1", "k0"]);
    });

    test("listing filters by status, model and search, and counts what matches", async () => {
      const make = async (
        name: string,
        extra: { model?: string; expiresAt?: number; disabled?: boolean },
        at: number,
      ) => {
        const { record } = await createKey(
          s,
          { name, tokenLimit: 1, model: extra.model ?? null, expiresAt: extra.expiresAt ?? null },
          at,
        );
        if (extra.disabled) await s.updateKey(record.id, { disabled: true }, at);
        return record;
      };
      await make("Alice laptop", { model: "glm-4.5" }, T0 + 1);
      await make("bob_ci", { disabled: true }, T0 + 2);
      await make("100% team", { model: "glm-4.5", expiresAt: T0 - 1 }, T0 + 3);
      await make("BOB desktop", { model: "glm-4.7" }, T0 + 4);
      await make("back\\slash", { model: "glm-4.5", disabled: true }, T0 + 5);
      const plain = await make("plain", {}, T0 + 6);
      const list = async (q: {
        status?: "all" | "active" | "expired" | "disabled";
        model?: string;
        search?: string;
        limit?: number;
        offset?: number;
      }) => {
        const r = await s.listKeys({ limit: 10, offset: 0, now: T0, ...q });
        return { names: r.keys.map((k) => k.name), total: r.total };
      };
      expect(await list({ status: "disabled" })).toEqual({
        names: ["back\\slash", "bob_ci"],
        total: 2,
      });
      expect(await list({ status: "active" })).toEqual({
        names: ["plain", "BOB desktop", "Alice laptop"],
        total: 3,
      });
      expect(await list({ model: "glm-4.5" })).toEqual({
        names: ["back\\slash", "100% team", "Alice laptop"],
        total: 3,
      });
      // Exact match only.
      expect((await list({ model: "glm-4" })).total).toBe(0);
      expect(await list({ search: "bob" })).toEqual({
        names: ["BOB desktop", "bob_ci"],
        total: 2,
      });
      expect(await list({ search: "LAPTOP" })).toEqual({ names: ["Alice laptop"], total: 1 });
      // LIKE wildcards in a search match themselves.
      expect(await list({ search: "%" })).toEqual({ names: ["100% team"], total: 1 });
      expect(await list({ search: "0%" })).toEqual({ names: ["100% team"], total: 1 });
      expect(await list({ search: "b_" })).toEqual({ names: ["bob_ci"], total: 1 });
      expect(await list({ search: "\\" })).toEqual({ names: ["back\\slash"], total: 1 });
      // The display prefix matches from its start, in any case, not in its middle.
      const prefix = plain.keyPrefix;
      expect(await list({ search: prefix.toUpperCase() })).toEqual({ names: ["plain"], total: 1 });
      expect(await list({ search: prefix.slice(3) })).toEqual({ names: [], total: 0 });
      // Filters combine, and the total counts all matches, not the page.
      expect(await list({ status: "disabled", model: "glm-4.5" })).toEqual({
        names: ["back\\slash"],
        total: 1,
      });
      expect(await list({ model: "glm-4.5", search: "a", limit: 1, offset: 1 })).toEqual({
        names: ["100% team"],
        total: 3,
      });
      expect(await list({ status: "active", model: "glm-4.5", search: "team" })).toEqual({
        names: [],
        total: 0,
      });
    });

    test("a key both disabled and expired is listed as disabled only", async () => {
      const { record } = await createKey(
        s,
        { name: "both", tokenLimit: 1, expiresAt: T0 - 1 },
        T0 - 10,
      );
      await s.updateKey(record.id, { disabled: true }, T0 - 5);
      await createKey(s, { name: "just expired", tokenLimit: 1, expiresAt: T0 }, T0 - 9);
      await createKey(s, { name: "live", tokenLimit: 1, expiresAt: T0 + 1 }, T0 - 8);
      const names = async (status: "all" | "active" | "expired" | "disabled") => {
        const r = await s.listKeys({ limit: 10, offset: 0, now: T0, status });
        return { names: r.keys.map((k) => k.name), total: r.total };
      };
      expect(await names("disabled")).toEqual({ names: ["both"], total: 1 });
      // Expiry at exactly `now` counts as expired.
      expect(await names("expired")).toEqual({ names: ["just expired"], total: 1 });
      expect(await names("active")).toEqual({ names: ["live"], total: 1 });
      expect((await names("all")).total).toBe(3);
    });

    historyContractTests(() => s);
    modelUsageContractTests(() => s);
    revokeContractTests(() => s);

    test("usage lands in buckets and totals, with the checkpoint, in one batch", async () => {
      const { record } = await createKey(s, { name: "u", tokenLimit: 1 }, T0);
      await s.applyUsage({
        instanceId: "i1",
        firstSeq: 1,
        lastSeq: 5,
        keys: [
          {
            keyId: record.id,
            tokens: 30,
            requests: 3,
            lastUsedAt: T0 + BUCKET_MS + 1,
            buckets: [
              { bucketStart: T0, tokens: 10, requests: 1 },
              { bucketStart: T0 + BUCKET_MS, tokens: 20, requests: 2 },
            ],
          },
        ],
      });
      await s.applyUsage({
        instanceId: "i1",
        firstSeq: 6,
        lastSeq: 6,
        keys: [
          {
            keyId: record.id,
            tokens: 4,
            requests: 1,
            lastUsedAt: T0 + 2,
            buckets: [{ bucketStart: T0, tokens: 4, requests: 1 }],
          },
        ],
      });
      expect(await s.usageSince(record.id, T0)).toEqual([
        { bucketStart: T0, tokens: 14, requests: 2 },
        { bucketStart: T0 + BUCKET_MS, tokens: 20, requests: 2 },
      ]);
      expect(await s.usageSince(record.id, T0 + 1)).toEqual([
        { bucketStart: T0 + BUCKET_MS, tokens: 20, requests: 2 },
      ]);
      const k = await s.getKeyById(record.id);
      // last used never moves backwards
      expect(k).toMatchObject({
        totalTokens: 34,
        totalRequests: 4,
        lastUsedAt: T0 + BUCKET_MS + 1,
      });
      expect(await s.checkpoint("i1")).toBe(6);
      expect(await s.checkpoint("other")).toBe(0);
    });

    test("token counts beyond 32 bits are exact", async () => {
      const { record } = await createKey(s, { name: "big", tokenLimit: 2 ** 40 }, T0);
      const big = 2 ** 33 + 7;
      for (let seq = 1; seq <= 2; seq++) {
        await s.applyUsage({
          instanceId: "i",
          firstSeq: seq,
          lastSeq: seq,
          keys: [
            {
              keyId: record.id,
              tokens: big,
              requests: 1,
              lastUsedAt: T0,
              buckets: [{ bucketStart: T0, tokens: big, requests: 1 }],
            },
          ],
        });
      }
      const k = await s.getKeyById(record.id);
      expect(k?.totalTokens).toBe(2 * big);
      expect(k?.tokenLimit).toBe(2 ** 40);
      expect((await s.usageSince(record.id, T0))[0]?.tokens).toBe(2 * big);
    });

    test("usage for a deleted key is dropped, not an error; deleting a key drops its buckets", async () => {
      const { record } = await createKey(s, { name: "gone", tokenLimit: 1 }, T0);
      const usage = {
        keyId: record.id,
        tokens: 1,
        requests: 1,
        lastUsedAt: T0,
        buckets: [{ bucketStart: T0, tokens: 1, requests: 1 }],
      };
      await s.applyUsage({ instanceId: "i", firstSeq: 1, lastSeq: 1, keys: [usage] });
      await s.deleteKey(record.id);
      expect(await s.usageSince(record.id, 0)).toEqual([]);
      await s.applyUsage({ instanceId: "i", firstSeq: 2, lastSeq: 2, keys: [usage] });
      expect(await s.checkpoint("i")).toBe(2);
      expect(await s.usageSince(record.id, 0)).toEqual([]);
    });

    concurrent(
      "concurrent batches from several instances are all counted exactly once",
      async () => {
        const keys = await Promise.all(
          [0, 1, 2].map((i) => createKey(s, { name: `c${i}`, tokenLimit: 1 }, T0)),
        );
        // Three instances flush at the same time, each its own batches in
        // order; each batch names the keys in a different order, which is
        // how two flushes could deadlock if rows were locked as listed.
        const instance = async (inst: number) => {
          for (let n = 1; n <= 20; n++) {
            const order = n % 2 === inst % 2 ? keys : [...keys].reverse();
            await s.applyUsage({
              instanceId: `inst${inst}`,
              firstSeq: n,
              lastSeq: n,
              keys: order.map((k) => ({
                keyId: k.record.id,
                tokens: n,
                requests: 1,
                lastUsedAt: T0 + n,
                buckets: [{ bucketStart: T0 + (n % 4) * BUCKET_MS, tokens: n, requests: 1 }],
              })),
            });
          }
        };
        await Promise.all([0, 1, 2].map(instance));
        for (const k of keys) {
          const rec = await s.getKeyById(k.record.id);
          expect(rec?.totalTokens).toBe(3 * ((20 * 21) / 2));
          expect(rec?.totalRequests).toBe(60);
          const buckets = await s.usageSince(k.record.id, 0);
          expect(buckets.reduce((a, b) => a + b.tokens, 0)).toBe(3 * 210);
          expect(buckets).toHaveLength(4);
        }
        for (const i of [0, 1, 2]) expect(await s.checkpoint(`inst${i}`)).toBe(20);
      },
    );

    test("a batch written again after a lost answer is not applied twice", async () => {
      const { record } = await createKey(s, { name: "retry", tokenLimit: 1 }, T0);
      const batch = {
        instanceId: "i",
        firstSeq: 1,
        lastSeq: 3,
        keys: [
          {
            keyId: record.id,
            tokens: 30,
            requests: 3,
            lastUsedAt: T0,
            buckets: [{ bucketStart: T0, tokens: 30, requests: 3 }],
          },
        ],
      };
      await s.applyUsage(batch);
      await s.applyUsage(batch);
      await Promise.all([s.applyUsage(batch), s.applyUsage(batch)]);
      expect(await s.getKeyById(record.id)).toMatchObject({ totalTokens: 30, totalRequests: 3 });
      expect(await s.usageSince(record.id, 0)).toEqual([
        { bucketStart: T0, tokens: 30, requests: 3 },
      ]);
      await s.applyUsage({ ...batch, firstSeq: 4, lastSeq: 4 });
      expect((await s.getKeyById(record.id))?.totalTokens).toBe(60);
    });

    test("the checkpoint never moves backwards", async () => {
      await s.applyUsage({ instanceId: "i", firstSeq: 9, lastSeq: 9, keys: [] });
      await s.applyUsage({ instanceId: "i", firstSeq: 4, lastSeq: 4, keys: [] });
      expect(await s.checkpoint("i")).toBe(9);
    });

    test("ping answers while the database is open", async () => {
      await expect(s.ping()).resolves.toBeUndefined();
    });
  });
}
