import { expect, test } from "bun:test";
import { hashKey } from "../../src/keys/secret.ts";
import { createKey } from "../../src/keys/service.ts";
import type { NewAuditEntry, Storage } from "../../src/storage/types.ts";
import { BUCKET_MS } from "../../src/time/buckets.ts";

// Revoked keys and the audit log, part of the contract every backend runs
// (called from `storageContract`).

const T0 = Date.UTC(2026, 10, 28, 12, 0, 0);

let seq = 0;
async function charge(s: Storage, keyId: string, tokens: number, at = T0): Promise<void> {
  seq++;
  await s.applyUsage({
    instanceId: "revoke",
    firstSeq: seq,
    lastSeq: seq,
    keys: [
      {
        keyId,
        tokens,
        requests: 1,
        lastUsedAt: at,
        buckets: [{ bucketStart: at - (at % BUCKET_MS), tokens, requests: 1 }],
      },
    ],
  });
}

function entry(over: Partial<NewAuditEntry> = {}): NewAuditEntry {
  return {
    at: T0,
    actor: { kind: "cli", name: "ops@host" },
    action: "key.create",
    keyId: "k1",
    keyPrefix: "pk_abc",
    keyName: "alice",
    changes: { name: { before: null, after: "alice" } },
    ...over,
  };
}

export function revokeContractTests(storage: () => Storage): void {
  test("a revoked key keeps its name, limits, totals and buckets; its secret and hash are gone", async () => {
    const s = storage();
    const { record, secret } = await createKey(s, { name: "gone", tokenLimit: 500 }, T0);
    const other = await createKey(s, { name: "stays", tokenLimit: 500 }, T0);
    await charge(s, record.id, 50);
    await charge(s, other.record.id, 80);

    const revoked = await s.revokeKey(record.id, T0 + 10);
    expect(revoked).toMatchObject({
      id: record.id,
      name: "gone",
      tokenLimit: 500,
      totalTokens: 50,
      totalRequests: 1,
      revokedAt: T0 + 10,
    });
    expect(revoked?.keyHash).not.toBe(hashKey(secret));
    expect(await s.getKeyByHash(hashKey(secret))).toBeNull();
    expect(await s.usageSince(record.id, 0)).toHaveLength(1);
    // Totals over every key still match what was charged: 50 + 80.
    const all = await s.usageByKey(0, T0 + 3_600_000);
    expect(all.reduce((sum, t) => sum + t.tokens, 0)).toBe(130);
    expect((await s.usageBetween(null, 0, T0 + 3_600_000))[0]?.tokens).toBe(130);

    // Revoking again changes nothing.
    expect((await s.revokeKey(record.id, T0 + 99))?.revokedAt).toBe(T0 + 10);
    expect(await s.revokeKey("missing", T0)).toBeNull();

    // Usage still pending when the key was revoked is charged, not lost.
    await charge(s, record.id, 5);
    expect((await s.getKeyById(record.id))?.totalTokens).toBe(55);
  });

  test("revoked keys are hidden from listings unless asked for", async () => {
    const s = storage();
    const a = await createKey(s, { name: "a", tokenLimit: 1 }, T0);
    const b = await createKey(s, { name: "b", tokenLimit: 1 }, T0 + 1);
    await s.revokeKey(a.record.id, T0 + 2);
    const ids = async (q: object) =>
      (await s.listKeys({ limit: 10, offset: 0, now: T0 + 3, ...q })).keys.map((k) => k.id);
    expect(await ids({})).toEqual([b.record.id]);
    expect(await ids({ status: "active" })).toEqual([b.record.id]);
    expect(await ids({ status: "revoked" })).toEqual([a.record.id]);
    expect(await ids({ status: "all", includeRevoked: true })).toEqual([b.record.id, a.record.id]);
    expect((await s.listKeys({ limit: 10, offset: 0, now: T0 + 3 })).total).toBe(1);
  });

  test("purging erases the key and its usage, and blanks its name in the audit log", async () => {
    const s = storage();
    const { record } = await createKey(s, { name: "erase me", tokenLimit: 1 }, T0);
    await charge(s, record.id, 7);
    await s.appendAudit(
      entry({
        keyId: record.id,
        keyName: "erase me",
        changes: {
          name: { before: null, after: "erase me" },
          token_limit_per_5h: { before: null, after: 1 },
        },
      }),
    );
    await s.appendAudit(entry({ keyId: "other", keyName: "other" }));
    await s.revokeKey(record.id, T0 + 1);
    expect(await s.deleteKey(record.id)).toBe(true);
    expect(await s.getKeyById(record.id)).toBeNull();
    expect(await s.usageSince(record.id, 0)).toEqual([]);
    expect(await s.usageByKey(0, T0 + 3_600_000)).toEqual([]);
    const log = await s.listAudit({ limit: 10, offset: 0 });
    expect(log.entries.find((e) => e.keyId === record.id)?.keyName).toBeNull();
    expect(JSON.stringify(log.entries.find((e) => e.keyId === record.id))).not.toContain(
      "erase me",
    );
    expect(log.entries.find((e) => e.keyId === "other")?.keyName).toBe("other");
  });

  test("the audit log keeps entries in order, filters by key and time, pages, and prunes by age", async () => {
    const s = storage();
    await s.appendAudit(entry({ at: T0, keyId: "k1" }));
    await s.appendAudit(entry({ at: T0 + 10, keyId: "k2", action: "key.update" }));
    await s.appendAudit(entry({ at: T0 + 20, keyId: "k1", action: "key.revoke", changes: null }));
    await s.appendAudit(
      entry({ at: T0 + 30, keyId: null, keyPrefix: null, keyName: null, action: "data.migrate" }),
    );
    const all = await s.listAudit({ limit: 10, offset: 0 });
    expect(all.total).toBe(4);
    expect(all.entries.map((e) => e.at)).toEqual([T0 + 30, T0 + 20, T0 + 10, T0]);
    expect(all.entries[3]).toMatchObject({
      actor: { kind: "cli", name: "ops@host" },
      action: "key.create",
      keyId: "k1",
      keyPrefix: "pk_abc",
      keyName: "alice",
      changes: { name: { before: null, after: "alice" } },
    });
    const k1 = await s.listAudit({ keyId: "k1", limit: 10, offset: 0 });
    expect(k1.entries.map((e) => e.action)).toEqual(["key.revoke", "key.create"]);
    const recent = await s.listAudit({ since: T0 + 10, limit: 1, offset: 1 });
    expect(recent.total).toBe(3);
    expect(recent.entries.map((e) => e.at)).toEqual([T0 + 20]);

    expect(await s.pruneAudit(T0 + 20, 1)).toBe(1);
    expect(await s.pruneAudit(T0 + 20, 10)).toBe(1);
    expect((await s.listAudit({ limit: 10, offset: 0 })).entries.map((e) => e.at)).toEqual([
      T0 + 30,
      T0 + 20,
    ]);
  });

  test("the audit log is exported and imported whole, and appends continue after it", async () => {
    const s = storage();
    if (!s.exportAudit || !s.importAudit) return expect(s.kind).toBe("file");
    await s.appendAudit(entry({ at: T0 }));
    await s.appendAudit(entry({ at: T0 + 1, action: "key.rotate" }));
    const batches: unknown[] = [];
    for await (const b of s.exportAudit(1)) batches.push(...b);
    expect(batches).toHaveLength(2);
    await s.pruneAudit(T0 + 10, 10);
    await s.importAudit(batches as never);
    await s.appendAudit(entry({ at: T0 + 2, action: "key.revoke" }));
    const log = await s.listAudit({ limit: 10, offset: 0 });
    expect(log.entries.map((e) => e.action)).toEqual(["key.revoke", "key.rotate", "key.create"]);
    expect(new Set(log.entries.map((e) => e.id)).size).toBe(3);
  });
}
