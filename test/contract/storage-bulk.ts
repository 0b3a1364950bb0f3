import { afterEach, beforeEach, describe, expect, test } from "bun:test";
import { hashKey } from "../../src/keys/secret.ts";
import { ImportVerificationError, type KeyExport, type Storage } from "../../src/storage/types.ts";
import type { StorageFixture } from "./storage.ts";

const T0 = Date.UTC(2026, 10, 28, 12, 0, 0);
const B = 5 * 60 * 1000;

export function exportRow(i: number, buckets = 2): KeyExport {
  return {
    key: {
      id: `key_import_${String(i).padStart(4, "0")}`,
      keyHash: hashKey(`pk_import_${i}`),
      keyPrefix: `pk_import_${i}`.slice(0, 10),
      name: `imported ${i}`,
      tokenLimit: 1000 + i,
      model: i % 2 ? "glm-4.5" : null,
      expiresAt: i % 3 ? T0 + i : null,
      maxConcurrent: i % 2 ? null : 1 + (i % 7),
      weeklyLimit: i % 3 ? null : 5000 + i,
      allowedModels: i % 4 ? null : ["glm-4.*", `model-${i}`],
      disabled: i % 5 === 0,
      createdAt: T0 + i,
      updatedAt: T0 + i,
      lastUsedAt: i % 4 ? T0 + 2 * i : null,
      totalTokens: 2 ** 33 + i,
      totalRequests: i,
      revokedAt: i % 6 === 1 ? T0 + 3 * i : null,
    },
    buckets: Array.from({ length: buckets }, (_, j) => ({
      bucketStart: T0 - j * B,
      tokens: 10 * (i + j + 1),
      requests: j + 1,
    })),
  };
}

async function everything(s: Storage): Promise<KeyExport[]> {
  const out: KeyExport[] = [];
  for await (const batch of s.exportKeys?.(3) ?? []) out.push(...batch);
  return out;
}

/** Moving whole keys in and out: what import and `db copy` rely on. Databases only. */
export function bulkContract(name: string, make: () => Promise<StorageFixture>): void {
  describe(`bulk import and export: ${name}`, () => {
    let fx: StorageFixture;
    let s: Storage;
    beforeEach(async () => {
      fx = await make();
      s = fx.storage;
    });
    afterEach(async () => {
      await fx.cleanup();
    });

    test("rows imported are exported back identical, in batches, oldest first", async () => {
      const rows = [3, 1, 2, 5, 4, 6, 7].map((i) => exportRow(i));
      const progress: number[] = [];
      const r = await s.importKeys?.(rows, {
        skipExisting: true,
        onProgress: (d) => progress.push(d),
      });
      expect(r).toEqual({ inserted: 7, skipped: [] });
      expect(progress.at(-1)).toBe(7);
      const out = await everything(s);
      const sorted = [...rows].sort((a, b) => a.key.createdAt - b.key.createdAt);
      expect(out.map((o) => o.key)).toEqual(sorted.map((r) => r.key));
      expect(out.map((o) => o.buckets)).toEqual(
        sorted.map((r) => [...r.buckets].sort((a, b) => a.bucketStart - b.bucketStart)),
      );
    });

    test("existing keys are skipped when asked, refused otherwise, with nothing half-written", async () => {
      await s.importKeys?.([exportRow(1)], { skipExisting: true });
      const again = await s.importKeys?.([exportRow(1), exportRow(2)], { skipExisting: true });
      expect(again).toEqual({ inserted: 1, skipped: [exportRow(1).key.id] });
      expect(await s.countKeys()).toBe(2);
      await expect(
        s.importKeys?.([exportRow(3), exportRow(1)], { skipExisting: false }),
      ).rejects.toThrow();
      expect(await s.countKeys()).toBe(2);
      expect(await s.getKeyById(exportRow(3).key.id)).toBeNull();
    });

    test("a verification problem rolls the whole import back", async () => {
      let seen: KeyExport[] = [];
      const p = s.importKeys?.([exportRow(1), exportRow(2)], {
        skipExisting: true,
        verify: (written) => {
          seen = written;
          return ["key #2: tokens differ"];
        },
      });
      await expect(p).rejects.toBeInstanceOf(ImportVerificationError);
      // The verifier saw what the database holds inside the transaction…
      expect(seen.map((w) => w.key)).toEqual([exportRow(1).key, exportRow(2).key]);
      // …and afterwards none of it is there.
      expect(await s.countKeys()).toBe(0);
      expect(await s.usageSince(exportRow(1).key.id, 0)).toEqual([]);
    });

    test("an empty database exports nothing", async () => {
      expect(await everything(s)).toEqual([]);
    });
  });
}
