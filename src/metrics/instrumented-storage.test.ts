import { afterEach, beforeEach, expect, test } from "bun:test";
import client from "prom-client";
import { openSqliteStorage } from "../storage/sqlite/index.ts";
import type { Storage } from "../storage/types.ts";
import { instrumentStorage } from "./instrumented-storage.ts";

let registry: client.Registry;
let metrics: {
  storageDuration: client.Histogram<"op">;
  storageErrors: client.Counter<"op">;
};
let inner: Storage;

beforeEach(async () => {
  registry = new client.Registry();
  metrics = {
    storageDuration: new client.Histogram({
      name: "d",
      help: "d",
      labelNames: ["op"] as const,
      registers: [registry],
    }),
    storageErrors: new client.Counter({
      name: "e",
      help: "e",
      labelNames: ["op"] as const,
      registers: [registry],
    }),
  };
  inner = openSqliteStorage(":memory:");
  await inner.migrate();
});
afterEach(async () => {
  await inner.close();
});

async function observed(op: string): Promise<number> {
  const h = await metrics.storageDuration.get();
  return h.values.find((v) => v.metricName === "d_count" && v.labels.op === op)?.value ?? 0;
}

test("usage history operations are timed and still answer", async () => {
  const inflight = { n: 0 };
  const s = instrumentStorage(inner, metrics, inflight);
  expect(await s.usageBetween(null, 0, 1)).toEqual([]);
  expect(await s.usageByKey(0, 1)).toEqual([]);
  expect(await s.pruneUsage(1, 10)).toBe(0);
  for (const op of ["usageBetween", "usageByKey", "pruneUsage"]) {
    expect(await observed(op)).toBe(1);
  }
  expect(inflight.n).toBe(0);
});

test("a failing operation is counted as an error and still throws", async () => {
  const s = instrumentStorage(inner, metrics, { n: 0 });
  await inner.close();
  await expect(s.pruneUsage(1, 10)).rejects.toThrow();
  const errors = await metrics.storageErrors.get();
  expect(errors.values.find((v) => v.labels.op === "pruneUsage")?.value).toBe(1);
  inner = openSqliteStorage(":memory:");
});
