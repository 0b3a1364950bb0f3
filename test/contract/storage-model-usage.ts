import { expect, test } from "bun:test";
import { createKey } from "../../src/keys/service.ts";
import type { ModelUsage, Storage } from "../../src/storage/types.ts";

// Per-model hourly usage, part of the contract every backend runs (called
// from `storageContract`).

const HOUR = 60 * 60 * 1000;
const T0 = Date.UTC(2026, 10, 28, 12, 0, 0);

const row = (keyId: string, model: string, hour: number, n: number): ModelUsage => ({
  keyId,
  model,
  bucketStart: T0 + hour * HOUR,
  input: 10 * n,
  output: 2 * n,
  cacheRead: 5 * n,
  cacheWrite: n,
  units: 30 * n,
  requests: n,
  spendMicros: 7 * n,
});

const total = ({ bucketStart: _, ...r }: ModelUsage) => r;

let seq = 0;
async function apply(s: Storage, rows: ModelUsage[], instanceId = "models"): Promise<void> {
  seq++;
  const keyIds = [...new Set(rows.map((r) => r.keyId))];
  await s.applyUsage({
    instanceId,
    firstSeq: seq,
    lastSeq: seq,
    keys: keyIds.map((keyId) => ({
      keyId,
      tokens: rows.filter((r) => r.keyId === keyId).reduce((a, r) => a + r.units, 0),
      requests: rows.filter((r) => r.keyId === keyId).reduce((a, r) => a + r.requests, 0),
      lastUsedAt: T0,
      buckets: [],
    })),
    models: rows,
  });
}

export function modelUsageContractTests(storage: () => Storage): void {
  test("model usage: rows add up per key, model and hour; totals per key and model", async () => {
    const s = storage();
    const { record: a } = await createKey(s, { name: "ma", tokenLimit: 1 }, T0);
    const { record: b } = await createKey(s, { name: "mb", tokenLimit: 1 }, T0);
    await apply(s, [
      row(a.id, "glm-4.7", 0, 1),
      row(a.id, "glm-5", 0, 2),
      row(b.id, "glm-4.7", 1, 3),
    ]);
    await apply(s, [row(a.id, "glm-4.7", 0, 4), row(a.id, "glm-4.7", 2, 1)]);

    const mine = await s.modelUsage(T0, T0 + 3 * HOUR, a.id);
    expect(mine).toEqual([total(row(a.id, "glm-4.7", 0, 6)), total(row(a.id, "glm-5", 0, 2))]);
    // [from, to) by the hour's start.
    expect(await s.modelUsage(T0 + HOUR, T0 + 2 * HOUR, a.id)).toEqual([]);
    expect(await s.modelUsage(T0 + 2 * HOUR, T0 + 3 * HOUR, a.id)).toEqual([
      total(row(a.id, "glm-4.7", 2, 1)),
    ]);
    // Every key, ordered by key then model.
    const all = await s.modelUsage(T0, T0 + 3 * HOUR);
    const expected = [
      total(row(a.id, "glm-4.7", 0, 6)),
      total(row(a.id, "glm-5", 0, 2)),
      total(row(b.id, "glm-4.7", 1, 3)),
    ].sort((x, y) => (x.keyId < y.keyId ? -1 : x.keyId > y.keyId ? 1 : 0));
    expect(all).toEqual(expected);
    expect(await s.modelUsage(T0, T0 + 3 * HOUR, "no-such-key")).toEqual([]);
  });

  test("model usage: a replayed batch is not counted twice; a deleted key's rows are dropped", async () => {
    const s = storage();
    const { record: a } = await createKey(s, { name: "mr", tokenLimit: 1 }, T0);
    const batch = {
      instanceId: "models-replay",
      firstSeq: 1,
      lastSeq: 1,
      keys: [{ keyId: a.id, tokens: 30, requests: 1, lastUsedAt: T0, buckets: [] }],
      models: [row(a.id, "m", 0, 1), row("gone-key", "m", 0, 1)],
    };
    await s.applyUsage(batch);
    await s.applyUsage(batch);
    expect(await s.modelUsage(T0, T0 + HOUR)).toEqual([total(row(a.id, "m", 0, 1))]);
  });

  test("model usage: pruned before a cutoff, at most `limit` rows a call", async () => {
    const s = storage();
    const { record: a } = await createKey(s, { name: "mp", tokenLimit: 1 }, T0);
    await apply(s, [
      row(a.id, "m", 0, 1),
      row(a.id, "m", 1, 1),
      row(a.id, "n", 1, 1),
      row(a.id, "m", 2, 1),
    ]);
    expect(await s.pruneModelUsage(T0 + 2 * HOUR, 2)).toBe(2);
    expect(await s.pruneModelUsage(T0 + 2 * HOUR, 2)).toBe(1);
    expect(await s.pruneModelUsage(T0 + 2 * HOUR, 2)).toBe(0);
    expect(await s.modelUsage(T0, T0 + 3 * HOUR, a.id)).toEqual([total(row(a.id, "m", 2, 1))]);
  });
}
