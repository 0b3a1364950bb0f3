import { describe, expect, test } from "bun:test";
import client from "prom-client";
import { Registry } from "./exposition.ts";
import { LocalCounter, LocalGauge, LocalHistogram, ReadMetric } from "./local.ts";
import { registerProcessMetrics } from "./process.ts";

// The gateway's metrics must print exactly what prom-client, the library it
// used before, printed for the same metrics: scrapes, alerts and dashboards
// built on it cannot tell them apart. prom-client stays a development
// dependency for this comparison only.

async function theirs(build: (registry: client.Registry) => void): Promise<string> {
  const registry = new client.Registry();
  build(registry);
  return registry.metrics();
}

async function ours(build: (registry: Registry) => void): Promise<string> {
  const registry = new Registry();
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
    const expected = await theirs((registry) => {
      const c = new client.Counter({
        name: "t_total",
        help: "h",
        labelNames: ["route", "status"] as const,
        registers: [registry],
      });
      steps((l, by) => c.inc(l, by));
    });
    const text = await ours((registry) => {
      const c = new LocalCounter("t_total", "h", ["route", "status"] as const).register(registry);
      steps((l, by) => c.inc(l, by));
    });
    expect(text).toBe(expected);
    expect(text).toContain('t_total{route="/v1/messages",status="200"} 3');
  });

  test("a histogram prints as prom-client's histogram does, bounds included", async () => {
    const bounds = [0.005, 0.1, 1, 10];
    const values = [0.001, 0.005, 0.0051, 0.5, 1, 3, 10, 11, 600];
    const expected = await theirs((registry) => {
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
    const text = await ours((registry) => {
      const h = new LocalHistogram(
        "d_seconds",
        "h",
        ["dialect", "stream"] as const,
        bounds,
      ).register(registry);
      for (const v of values) h.observe({ dialect: "openai", stream: "false" }, v);
      h.observe({ stream: "true", dialect: "anthropic" }, 0.2);
    });
    expect(text).toBe(expected);
    expect(text).toContain('d_seconds_bucket{le="1",dialect="openai",stream="false"} 5');
  });

  test("gauges print as prom-client's do: set, read at the scrape, labelled, or left without values", async () => {
    const expected = await theirs((registry) => {
      new client.Gauge({ name: "a_depth", help: "a", registers: [registry] }).set(3);
      new client.Gauge({ name: "b_never_set", help: "b", registers: [registry] });
      new client.Gauge({
        name: "c_read",
        help: "c",
        registers: [registry],
        collect() {
          this.set(7.5);
        },
      });
      const d = new client.Gauge({
        name: "d_windows",
        help: "d",
        labelNames: ["window"] as const,
        registers: [registry],
      });
      d.set({ window: "5h" }, 10);
      d.set({ window: "weekly" }, 70);
      new client.Gauge({
        name: "e_absent",
        help: "e",
        labelNames: ["window"] as const,
        registers: [registry],
      });
    });
    const text = await ours((registry) => {
      new LocalGauge("a_depth", "a").register(registry).set(3);
      new LocalGauge("b_never_set", "b").register(registry);
      registry.register(new ReadMetric("c_read", "c", () => 7.5));
      registry.register(
        new ReadMetric("d_windows", "d", async () => [
          { labels: { window: "5h" }, value: 10 },
          { labels: { window: "weekly" }, value: 70 },
        ]),
      );
      registry.register(new ReadMetric("e_absent", "e", () => undefined));
    });
    expect(text).toBe(expected);
    expect(text).toContain('d_windows{window="weekly"} 70');
    expect(text).not.toMatch(/^e_absent/m);
  });

  test("help and label values are escaped as prom-client escapes them", async () => {
    const label = 'a "quoted" \\ back\nslash';
    const expected = await theirs((registry) => {
      new client.Counter({
        name: "x_total",
        help: "line one\nline two \\ end",
        labelNames: ["v"] as const,
        registers: [registry],
      }).inc({ v: label }, 2);
      new client.Gauge({ name: "y", help: "y", registers: [registry] }).set(Number.NaN);
      new client.Gauge({ name: "z", help: "z", registers: [registry] }).set(-Infinity);
    });
    const text = await ours((registry) => {
      new LocalCounter("x_total", "line one\nline two \\ end", ["v"] as const)
        .register(registry)
        .inc({ v: label }, 2);
      new LocalGauge("y", "y").register(registry).set(Number.NaN);
      new LocalGauge("z", "z").register(registry).set(-Infinity);
    });
    expect(text).toBe(expected);
    expect(text).toContain('x_total{v="a \\"quoted\\" \\\\ back\\nslash"} 2');
  });

  test("a timer observes the seconds between its start and its end", async () => {
    const registry = new Registry();
    const h = new LocalHistogram("op_seconds", "h", ["op"] as const, [0.01, 10]).register(registry);
    const end = h.startTimer({ op: "read" });
    await Bun.sleep(30);
    const seconds = end();
    expect(seconds).toBeGreaterThanOrEqual(0.025);
    expect(seconds).toBeLessThan(10);
    const text = await registry.metrics();
    expect(text).toContain('op_seconds_bucket{le="0.01",op="read"} 0');
    expect(text).toContain('op_seconds_bucket{le="10",op="read"} 1');
    expect(text).toContain(`op_seconds_sum{op="read"} ${seconds}`);
  });

  test("reset empties every series, as the registry's resetMetrics expects", async () => {
    const registry = new Registry();
    const c = new LocalCounter("r_total", "h", ["dialect"] as const).register(registry);
    c.inc({ dialect: "openai" }, 5);
    registry.resetMetrics();
    expect(await registry.metrics()).not.toContain('r_total{dialect="openai"}');
  });

  test("a counter only goes up and a histogram's sum stays a number: bad values are ignored", async () => {
    const registry = new Registry();
    const c = new LocalCounter("c_total", "h", ["k"] as const).register(registry);
    const h = new LocalHistogram("h_seconds", "h", ["k"] as const, [1]).register(registry);
    c.inc({ k: "a" }, 2);
    for (const bad of [-1, Number.NaN, Number.POSITIVE_INFINITY]) c.inc({ k: "a" }, bad);
    h.observe({ k: "a" }, 0.5);
    h.observe({ k: "a" }, Number.NaN);
    const text = await registry.metrics();
    expect(text).toContain('c_total{k="a"} 2');
    expect(text).toContain('h_seconds_sum{k="a"} 0.5');
    expect(text).toContain('h_seconds_count{k="a"} 1');
  });

  test("two metrics may not share a name", () => {
    const registry = new Registry();
    new LocalGauge("same", "a").register(registry);
    expect(() => new LocalGauge("same", "b").register(registry)).toThrow(/same/);
  });
});

describe("process metrics", () => {
  test("the process's CPU, memory, descriptors and event loop, under the usual names", async () => {
    const registry = new Registry();
    registerProcessMetrics(registry, "p_");
    await registry.metrics(); // the event loop delays start with the first scrape's interval
    await Bun.sleep(50);
    const text = await registry.metrics();
    const value = (name: string) => {
      const line = text.split("\n").find((l) => l.startsWith(`${name} `));
      return line === undefined ? undefined : Number(line.slice(name.length + 1));
    };
    expect(text).toContain("# TYPE p_process_cpu_seconds_total counter");
    const cpu = value("p_process_cpu_seconds_total") as number;
    expect(cpu).toBeGreaterThan(0);
    expect(cpu).toBeCloseTo(
      (value("p_process_cpu_user_seconds_total") as number) +
        (value("p_process_cpu_system_seconds_total") as number),
      2,
    );
    const rss = value("p_process_resident_memory_bytes") as number;
    expect(rss).toBeGreaterThan(10 * 1024 * 1024);
    expect(Math.abs(rss - process.memoryUsage.rss())).toBeLessThan(64 * 1024 * 1024);
    const started = value("p_process_start_time_seconds") as number;
    expect(Math.abs(started - (Date.now() / 1000 - process.uptime()))).toBeLessThan(2);
    expect(value("p_process_open_fds")).toBeGreaterThan(2);
    expect(value("p_process_max_fds")).toBeGreaterThan(value("p_process_open_fds") as number);
    expect(value("p_process_virtual_memory_bytes")).toBeGreaterThan(rss);
    expect(value("p_nodejs_eventloop_lag_seconds")).toBeGreaterThanOrEqual(0);
    expect(value("p_nodejs_eventloop_lag_p99_seconds")).toBeGreaterThan(0);
    expect(value("p_nodejs_heap_size_used_bytes")).toBeGreaterThan(0);
    // The seven delay figures of a scrape describe one interval, every scrape.
    for (let scrape = 0; scrape < 3; scrape++) {
      await Bun.sleep(40);
      const t = await registry.metrics();
      const fig = (n: string) => {
        const line = t
          .split("\n")
          .find((l) => l.startsWith(`p_nodejs_eventloop_lag_${n}_seconds `));
        expect(line, n).toBeDefined();
        return Number(line?.split(" ")[1]);
      };
      const [min, p50, p90, p99, max] = ["min", "p50", "p90", "p99", "max"].map(fig);
      expect(min).toBeLessThanOrEqual(p50 as number);
      expect(p50).toBeLessThanOrEqual(p90 as number);
      expect(p90).toBeLessThanOrEqual(p99 as number);
      expect(p99).toBeLessThanOrEqual((max as number) * 1.01);
      expect(fig("mean")).toBeGreaterThan(0);
      expect(fig("stddev")).toBeGreaterThanOrEqual(0);
    }
    // Figures this runtime does not keep are not printed as zeros.
    expect(text).not.toContain("heap_space");
    expect(text).not.toContain("active_handles");
  });
});
