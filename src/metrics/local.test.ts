import { describe, expect, test } from "bun:test";
import client from "prom-client";
import { LocalCounter, LocalHistogram } from "./local.ts";

// The local metrics must print exactly what prom-client's own would, so a
// scrape (and every dashboard built on it) cannot tell them apart.

async function text(build: (registry: client.Registry) => void): Promise<string> {
  const registry = new client.Registry();
  build(registry);
  return registry.metrics();
}

describe("local metrics", () => {
  test("a counter prints as prom-client's counter does", async () => {
    const steps = (inc: (labels: { route: string; status: number }, by?: number) => void) => {
      inc({ route: "/v1/messages", status: 200 });
      inc({ status: 429, route: "/v1/messages" }, 3);
      inc({ route: "/v1/messages", status: 200 }, 2);
    };
    const theirs = await text((registry) => {
      const c = new client.Counter({
        name: "t_total",
        help: "h",
        labelNames: ["route", "status"] as const,
        registers: [registry],
      });
      steps((l, by) => c.inc(l, by));
    });
    const ours = await text((registry) => {
      const c = new LocalCounter("t_total", "h", ["route", "status"] as const).register(registry);
      steps((l, by) => c.inc(l, by));
    });
    expect(ours).toBe(theirs);
    expect(ours).toContain('t_total{route="/v1/messages",status="200"} 3');
  });

  test("a histogram prints as prom-client's histogram does, bounds included", async () => {
    const bounds = [0.005, 0.1, 1, 10];
    const values = [0.001, 0.005, 0.0051, 0.5, 1, 3, 10, 11, 600];
    const theirs = await text((registry) => {
      const h = new client.Histogram({
        name: "d_seconds",
        help: "h",
        labelNames: ["dialect", "stream"] as const,
        buckets: bounds,
        registers: [registry],
      });
      for (const v of values) h.observe({ dialect: "openai", stream: "false" }, v);
      h.observe({ stream: "true", dialect: "anthropic" }, 0.2);
    });
    const ours = await text((registry) => {
      const h = new LocalHistogram(
        "d_seconds",
        "h",
        ["dialect", "stream"] as const,
        bounds,
      ).register(registry);
      for (const v of values) h.observe({ dialect: "openai", stream: "false" }, v);
      h.observe({ stream: "true", dialect: "anthropic" }, 0.2);
    });
    expect(ours).toBe(theirs);
    expect(ours).toContain('d_seconds_bucket{le="1",dialect="openai",stream="false"} 5');
  });

  test("reset empties every series, as the registry's resetMetrics expects", async () => {
    const registry = new client.Registry();
    const c = new LocalCounter("r_total", "h", ["dialect"] as const).register(registry);
    c.inc({ dialect: "openai" }, 5);
    registry.resetMetrics();
    expect(await registry.metrics()).not.toContain('r_total{dialect="openai"}');
  });
});
