import { afterEach, beforeEach, describe, expect, test } from "bun:test";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { UNVERIFIED_PREFIX } from "../keys/cache.ts";
import { hashKey } from "../keys/secret.ts";
import { createKey } from "../keys/service.ts";
import { silentLogger } from "../log.ts";
import { openSqliteStorage } from "../storage/sqlite/index.ts";
import type { Storage, UsageBatch } from "../storage/types.ts";
import { BUCKET_MS } from "../time/buckets.ts";
import { Journal } from "./journal.ts";
import { aggregate, UsageLedger } from "./ledger.ts";

const T0 = Date.UTC(2026, 10, 28, 12, 0, 0);

let dir: string;
let storage: Storage;
let keyId: string;
let now: number;
const clock = () => now;

/** A storage whose writes can be made to fail, as during a database outage. */
function flaky(s: Storage) {
  const state = { down: false };
  const wrapped: Storage = Object.create(s);
  wrapped.applyUsage = (b: UsageBatch) =>
    state.down ? Promise.reject(new Error("database unreachable")) : s.applyUsage(b);
  return { storage: wrapped, state };
}

async function open(s: Storage = storage) {
  return UsageLedger.open({
    storage: s,
    journal: Journal.open(join(dir, "journal"), "inst"),
    instanceId: "inst",
    clock,
    log: silentLogger(),
  });
}

const totals = async () => {
  const k = await storage.getKeyById(keyId);
  return { tokens: k?.totalTokens, requests: k?.totalRequests };
};

beforeEach(async () => {
  now = T0;
  dir = mkdtempSync(join(tmpdir(), "tollgate-ledger-"));
  storage = openSqliteStorage(join(dir, "t.db"));
  await storage.migrate();
  keyId = (await createKey(storage, { name: "k", tokenLimit: 1000 }, T0)).record.id;
});
afterEach(async () => {
  await storage.close();
  rmSync(dir, { recursive: true, force: true });
});

describe("UsageLedger", () => {
  test("a charge counts at once, reaches the database on flush, and leaves the journal empty", async () => {
    const ledger = await open();
    ledger.record(keyId, 16);
    now += BUCKET_MS;
    ledger.record(keyId, 4);
    expect(ledger.pendingTotals(keyId)).toMatchObject({ tokens: 20, requests: 2 });
    expect([...(ledger.pendingBuckets(keyId) ?? [])]).toEqual([
      [T0, 16],
      [T0 + BUCKET_MS, 4],
    ]);
    expect(await ledger.flush()).toBe(true);
    expect(await totals()).toEqual({ tokens: 20, requests: 2 });
    expect(ledger.pendingTotals(keyId)).toMatchObject({ tokens: 0, requests: 0 });
    expect(ledger.backlog).toBe(0);
    expect(Journal.open(join(dir, "journal"), "inst").read().events).toEqual([]);
    await ledger.close();
  });

  test("a crash before the flush loses nothing: the next start replays the journal once", async () => {
    const ledger = await open();
    for (let i = 0; i < 5; i++) ledger.record(keyId, 10);
    // Crash: the process dies without flushing.
    const second = await open();
    expect(await totals()).toEqual({ tokens: 50, requests: 5 });
    await second.close();
    const third = await open();
    expect(await totals()).toEqual({ tokens: 50, requests: 5 });
    await third.close();
    void ledger;
  });

  test("events already in the database are not charged again on replay", async () => {
    const ledger = await open();
    ledger.record(keyId, 7);
    ledger.record(keyId, 8);
    const file = join(dir, "journal", "inst.journal");
    const before = readFileSync(file);
    await ledger.flush();
    // The database committed, then the process died before emptying the journal.
    writeFileSync(file, before);
    const again = await open();
    expect(await totals()).toEqual({ tokens: 15, requests: 2 });
    await again.close();
  });

  test("while the database is down, usage stays pending and in the journal, then lands once", async () => {
    const f = flaky(storage);
    const ledger = await open(f.storage);
    f.state.down = true;
    ledger.record(keyId, 5);
    expect(await ledger.flush()).toBe(false);
    ledger.record(keyId, 6);
    expect(await ledger.flush()).toBe(false);
    expect(ledger.backlog).toBe(2);
    expect(ledger.lastFlushError).toContain("unreachable");
    expect(ledger.pendingTotals(keyId).tokens).toBe(11);
    expect(Journal.open(join(dir, "journal"), "inst").read().events).toHaveLength(2);
    f.state.down = false;
    expect(await ledger.flush()).toBe(true);
    expect(await totals()).toEqual({ tokens: 11, requests: 2 });
    await ledger.close();
  });

  test("a write that committed but whose answer was lost is not charged again on retry", async () => {
    let lose = true;
    const wrapped: Storage = Object.create(storage);
    wrapped.applyUsage = async (b: UsageBatch) => {
      await storage.applyUsage(b);
      if (lose) {
        lose = false;
        throw new Error("Connection terminated unexpectedly");
      }
    };
    const ledger = await open(wrapped);
    ledger.record(keyId, 100);
    expect(await ledger.flush()).toBe(false);
    ledger.record(keyId, 1);
    expect(await ledger.flush()).toBe(true);
    expect(await totals()).toEqual({ tokens: 101, requests: 2 });
    expect(ledger.backlog).toBe(0);
    await ledger.close();
  });

  test("usage of a key deleted before the flush is dropped without blocking other keys", async () => {
    const other = (await createKey(storage, { name: "o", tokenLimit: 1 }, T0)).record.id;
    const ledger = await open();
    ledger.record(keyId, 5);
    ledger.record(other, 3);
    await storage.deleteKey(keyId);
    expect(await ledger.flush()).toBe(true);
    expect((await storage.getKeyById(other))?.totalTokens).toBe(3);
    await ledger.close();
  });

  test("usage of keys let through unverified lands on the key with that hash, or is dropped", async () => {
    const { record, secret } = await createKey(storage, { name: "real", tokenLimit: 1 }, T0);
    const ledger = await open();
    ledger.record(`${UNVERIFIED_PREFIX}${hashKey(secret)}`, 12);
    ledger.record(`${UNVERIFIED_PREFIX}${hashKey("pk_made_up")}`, 99);
    expect(await ledger.flush()).toBe(true);
    const k = await storage.getKeyById(record.id);
    expect(k).toMatchObject({ totalTokens: 12, totalRequests: 1 });
    expect(ledger.backlog).toBe(0);
    await ledger.close();
  });

  test("close waits for requests still being charged", async () => {
    const ledger = await open();
    const release = ledger.hold();
    setTimeout(() => {
      ledger.record(keyId, 9);
      release();
    }, 50);
    await ledger.close(2000);
    expect(await totals()).toEqual({ tokens: 9, requests: 1 });
  });
});

describe("UsageLedger at shutdown", () => {
  test("a request still running when the bound runs out is charged what is known, once", async () => {
    const ledger = await open();
    let charged = false;
    const release = ledger.hold(() => {
      if (!charged) {
        charged = true;
        ledger.record(keyId, 40);
      }
    });
    await ledger.close(50);
    expect(await totals()).toEqual({ tokens: 40, requests: 1 });
    // The request's own completion, arriving late, changes nothing.
    release();
    expect(ledger.inflight).toBe(0);
  });
});

describe("aggregate", () => {
  test("one entry per key and one per (key, bucket)", () => {
    const a = aggregate([
      { seq: 1, keyId: "a", at: T0 + 1, tokens: 1, requests: 1 },
      { seq: 2, keyId: "a", at: T0 + 2, tokens: 2, requests: 1 },
      { seq: 3, keyId: "b", at: T0 + 3, tokens: 4, requests: 1 },
      { seq: 4, keyId: "a", at: T0 + BUCKET_MS, tokens: 8, requests: 1 },
    ]);
    expect(a).toEqual([
      {
        keyId: "a",
        tokens: 11,
        requests: 3,
        lastUsedAt: T0 + BUCKET_MS,
        buckets: [
          { bucketStart: T0, tokens: 3, requests: 2 },
          { bucketStart: T0 + BUCKET_MS, tokens: 8, requests: 1 },
        ],
      },
      {
        keyId: "b",
        tokens: 4,
        requests: 1,
        lastUsedAt: T0 + 3,
        buckets: [{ bucketStart: T0, tokens: 4, requests: 1 }],
      },
    ]);
  });
});
