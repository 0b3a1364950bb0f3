import { afterEach, beforeEach, describe, expect, test } from "bun:test";
import { mkdtempSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { storageContract } from "../../../test/contract/storage.ts";
import { hashKey } from "../../keys/secret.ts";
import { createKey } from "../../keys/service.ts";
import { openStorage } from "../open.ts";
import type { KeyExport, Storage } from "../types.ts";
import { openFileStorage } from "./index.ts";
import { NEVER_EXPIRES } from "./records.ts";

storageContract("file (legacy JSON)", async () => {
  const dir = mkdtempSync(join(tmpdir(), "tollgate-file-"));
  const storage = openFileStorage(join(dir, "nested", "apikeys.json"));
  await storage.migrate();
  return {
    storage,
    cleanup: async () => {
      await storage.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
});

const T0 = Date.UTC(2026, 10, 28, 12, 0, 0);

describe("file storage: keys created by Tollgate", () => {
  let dir: string;
  let path: string;
  let s: Storage;
  beforeEach(async () => {
    dir = mkdtempSync(join(tmpdir(), "tollgate-file-"));
    path = join(dir, "data", "apikeys.json");
    s = openFileStorage(path);
    await s.migrate();
  });
  afterEach(async () => {
    await s.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const file = () => JSON.parse(readFileSync(path, "utf8"));

  test("migrate creates the folder and an empty file readable by its owner only", async () => {
    expect(file()).toEqual({ keys: [] });
    expect(statSync(path).mode & 0o777).toBe(0o600);
    expect(s.kind).toBe("file");
    const before = readFileSync(path, "utf8");
    await s.migrate();
    expect(readFileSync(path, "utf8")).toBe(before);
  });

  test("a created key is stored by hash and prefix, never in clear", async () => {
    const { record, secret } = await createKey(s, { name: "carol", tokenLimit: 500 }, T0);
    const text = readFileSync(path, "utf8");
    expect(text).not.toContain(secret);
    expect(text).not.toContain(secret.slice(10));
    const [entry] = file().keys;
    expect(entry).toMatchObject({
      id: record.id,
      key_sha256: hashKey(secret),
      key_prefix: secret.slice(0, 10),
      name: "carol",
      token_limit_per_5h: 500,
      created_at: new Date(T0).toISOString(),
      total_lifetime_tokens: 0,
      total_requests: 0,
      usage_windows: [],
    });
    expect(entry.key).toBeUndefined();
    // A fresh instance (another process) reads the same record.
    expect(await openFileStorage(path).getKeyByHash(hashKey(secret))).toEqual(record);
  });

  test("a key that never expires is written with a far-future date and read back as never", async () => {
    const { record } = await createKey(s, { name: "forever", tokenLimit: 1 }, T0);
    expect(file().keys[0].expiry_date).toBe(NEVER_EXPIRES);
    expect(record.expiresAt).toBeNull();
    const dated = await s.updateKey(record.id, { expiresAt: T0 + 1000 }, T0);
    expect(dated?.expiresAt).toBe(T0 + 1000);
    expect(file().keys[0].expiry_date).toBe(new Date(T0 + 1000).toISOString());
    expect((await s.updateKey(record.id, { expiresAt: null }, T0))?.expiresAt).toBeNull();
    expect(file().keys[0].expiry_date).toBe(NEVER_EXPIRES);
  });

  test("a concurrency limit is written only while the key has one", async () => {
    const { record } = await createKey(s, { name: "c", tokenLimit: 1, maxConcurrent: 4 }, T0);
    expect(file().keys[0].max_concurrent).toBe(4);
    await s.updateKey(record.id, { maxConcurrent: null }, T0 + 1);
    expect("max_concurrent" in file().keys[0]).toBe(false);
    expect((await openFileStorage(path).getKeyById(record.id))?.maxConcurrent).toBeNull();
  });

  test("a file with an invalid concurrency limit is refused with the key named", async () => {
    const { record } = await createKey(s, { name: "bad", tokenLimit: 1 }, T0);
    const f = file();
    f.keys[0].max_concurrent = 0;
    writeFileSync(path, JSON.stringify(f));
    await expect(openFileStorage(path).getKeyById(record.id)).rejects.toThrow(
      /keys\[0\] \("bad"\) max_concurrent/,
    );
  });

  test("rotation replaces hash and prefix, keeps id and totals", async () => {
    const { record, secret } = await createKey(s, { name: "r", tokenLimit: 1 }, T0);
    const other = await createKey(s, { name: "o", tokenLimit: 1 }, T0);
    await expect(s.rotateKey(record.id, other.record.keyHash, "pk_x", T0)).rejects.toThrow();
    const r = await s.rotateKey(record.id, hashKey("pk_rotated"), "pk_rotate", T0 + 1);
    expect(r).toMatchObject({ id: record.id, keyPrefix: "pk_rotate", updatedAt: T0 + 1 });
    expect(await s.getKeyByHash(hashKey(secret))).toBeNull();
    expect(file().keys[0].key_sha256).toBe(hashKey("pk_rotated"));
  });

  test("a disabled key is listed neither as active nor as expired", async () => {
    const { record } = await createKey(s, { name: "off", tokenLimit: 1 }, T0);
    await s.updateKey(record.id, { disabled: true }, T0);
    expect(file().keys[0].disabled).toBe(true);
    const active = await s.listKeys({ limit: 10, offset: 0, now: T0, status: "active" });
    const expired = await s.listKeys({ limit: 10, offset: 0, now: T0, status: "expired" });
    expect(active.total + expired.total).toBe(0);
  });

  test("a change made by another process is seen at once", async () => {
    const other = openFileStorage(path);
    const { record } = await createKey(other, { name: "elsewhere", tokenLimit: 1 }, T0);
    expect(await s.getKeyById(record.id)).toEqual(record);
    await other.updateKey(record.id, { name: "renamed" }, T0 + 1);
    expect((await s.getKeyById(record.id))?.name).toBe("renamed");
    await other.deleteKey(record.id);
    expect(await s.countKeys()).toBe(0);
  });

  test("a file replaced by one of the same size is read again", async () => {
    const { record } = await createKey(s, { name: "aaaa", tokenLimit: 1 }, T0);
    expect((await s.getKeyById(record.id))?.name).toBe("aaaa");
    const text = readFileSync(path, "utf8").replace('"aaaa"', '"bbbb"');
    writeFileSync(`${path}.new`, text);
    renameSync(`${path}.new`, path);
    expect((await s.getKeyById(record.id))?.name).toBe("bbbb");
  });

  test("a key named twice in one batch is charged for both", async () => {
    const { record } = await createKey(s, { name: "twice", tokenLimit: 1 }, T0);
    const usage = {
      keyId: record.id,
      tokens: 5,
      requests: 1,
      lastUsedAt: T0,
      buckets: [{ bucketStart: T0, tokens: 5, requests: 1 }],
    };
    await s.applyUsage({ instanceId: "i", firstSeq: 1, lastSeq: 1, keys: [usage, usage] });
    expect((await s.getKeyById(record.id))?.totalTokens).toBe(10);
    expect(await s.usageSince(record.id, 0)).toEqual([
      { bucketStart: T0, tokens: 10, requests: 2 },
    ]);
  });

  test("export gives every key with its usage, oldest first, in batches", async () => {
    const old = await createKey(s, { name: "old", tokenLimit: 1 }, T0 - 10);
    const young = await createKey(s, { name: "young", tokenLimit: 1 }, T0);
    const bucket = { bucketStart: T0, tokens: 7, requests: 1 };
    await s.applyUsage({
      instanceId: "i",
      firstSeq: 1,
      lastSeq: 1,
      keys: [{ keyId: young.record.id, tokens: 7, requests: 1, lastUsedAt: T0, buckets: [bucket] }],
    });
    const out: KeyExport[][] = [];
    for await (const batch of s.exportKeys?.(1) ?? []) out.push(batch);
    expect(out).toHaveLength(2);
    expect(out.flat().map((r) => r.key.id)).toEqual([old.record.id, young.record.id]);
    expect(out[1]?.[0]?.buckets).toEqual([bucket]);
    expect(out[1]?.[0]?.key.totalTokens).toBe(7);
  });
});

test("STORAGE_TYPE=file opens and migrates the legacy file", async () => {
  const dir = mkdtempSync(join(tmpdir(), "tollgate-file-"));
  const path = join(dir, "data", "apikeys.json");
  const database = { poolMax: 1, connectAttempts: 1, connectBackoffMs: 1 };
  const storage = await openStorage({ storage: { type: "file", path }, database });
  expect(storage.kind).toBe("file");
  expect(JSON.parse(readFileSync(path, "utf8"))).toEqual({ keys: [] });
  await storage.close();
  rmSync(dir, { recursive: true, force: true });
});
