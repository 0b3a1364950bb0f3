import { describe, expect, test } from "bun:test";
import { openSqliteStorage } from "../storage/sqlite/index.ts";
import { instrumentStorage } from "./instrumented-storage.ts";
import { createMetrics, type MetricsSources } from "./registry.ts";

type Outcome = { status: "ok" | "failed" | "skipped"; startedAt: string };

function metricsWith(last: () => Outcome | undefined, extra: Partial<MetricsSources> = {}) {
  return createMetrics({
    backlog: () => 0,
    storageUp: () => 1,
    keysInMemory: () => 0,
    storageInflight: () => 0,
    poolMax: 1,
    backups: () => ({ lastOutcome: last }) as ReturnType<NonNullable<MetricsSources["backups"]>>,
    ...extra,
  });
}

const sampleOf = (text: string, name: string) =>
  text
    .split("\n")
    .find((l) => l.startsWith(`${name} `))
    ?.slice(name.length + 1);

describe("the gateway's metrics", () => {
  test("backup gauges: absent until a backup has run; a skipped run leaves the last verdict", async () => {
    let last: Outcome | undefined;
    const m = metricsWith(() => last);
    const scrape = () => m.registry.metrics();
    expect(sampleOf(await scrape(), "tollgate_backup_last_ok")).toBeUndefined();
    expect(sampleOf(await scrape(), "tollgate_backup_last_run_timestamp_seconds")).toBeUndefined();
    last = { status: "ok", startedAt: "2026-12-07T02:00:00.000Z" };
    expect(sampleOf(await scrape(), "tollgate_backup_last_ok")).toBe("1");
    last = { status: "skipped", startedAt: "2026-12-08T02:00:00.000Z" };
    const afterSkip = await scrape();
    expect(sampleOf(afterSkip, "tollgate_backup_last_ok")).toBe("1");
    expect(sampleOf(afterSkip, "tollgate_backup_last_run_timestamp_seconds")).toBe(
      String(Date.parse("2026-12-08T02:00:00.000Z") / 1000),
    );
    last = { status: "failed", startedAt: "2026-12-09T02:00:00.000Z" };
    expect(sampleOf(await scrape(), "tollgate_backup_last_ok")).toBe("0");
    last = { status: "skipped", startedAt: "2026-12-10T02:00:00.000Z" };
    expect(sampleOf(await scrape(), "tollgate_backup_last_ok")).toBe("0");
  });

  test("storage operations are timed into the scrape by the gateway's own histogram", async () => {
    const m = metricsWith(() => undefined);
    const inner = openSqliteStorage(":memory:");
    await inner.migrate();
    try {
      const s = instrumentStorage(inner, m, { n: 0 });
      await s.usageByKey(0, 1);
      await s.usageByKey(0, 1);
      await inner.close();
      await expect(s.usageByKey(0, 1)).rejects.toThrow();
      const text = await m.registry.metrics();
      expect(sampleOf(text, 'tollgate_storage_operation_seconds_count{op="usageByKey"}')).toBe("3");
      expect(sampleOf(text, 'tollgate_storage_errors_total{op="usageByKey"}')).toBe("1");
      const sum = Number(sampleOf(text, 'tollgate_storage_operation_seconds_sum{op="usageByKey"}'));
      expect(sum).toBeGreaterThan(0);
      expect(sum).toBeLessThan(5);
    } finally {
      await inner.close().catch(() => {});
    }
  });
});
