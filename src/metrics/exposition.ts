// The Prometheus text format (version 0.0.4) for the gateway's own metrics.
// Pure: a registry holds the metrics and prints them when /metrics is
// scraped; nothing here runs on the request path.
//
// The text is byte for byte what prom-client printed before it was dropped
// (a test compares the two), so scrapes, alerts and dashboards cannot tell.
// prom-client and its OpenTelemetry interface were 88 of the modules a
// serving gateway loaded, and about 4 MiB of its peak memory.

/** One line of a metric: its labels and value, under the metric's name or `metricName`. */
export interface MetricValue {
  labels: Readonly<Record<string, string | number>>;
  value: number;
  /** A histogram's `_bucket`, `_sum` and `_count` lines name themselves. */
  metricName?: string;
}

export type MetricType = "counter" | "gauge" | "histogram";

/** What a metric holds at the moment of a scrape. */
export interface MetricSnapshot {
  name: string;
  help: string;
  type: MetricType;
  values: MetricValue[];
}

/** Anything the registry can print: read once per scrape. */
export interface Collectable {
  readonly name: string;
  get(): MetricSnapshot | Promise<MetricSnapshot>;
  /** Forget every series (tests; a registry's reset). */
  reset?(): void;
}

const escapeText = (s: string) => s.replace(/\\/g, "\\\\").replace(/\n/g, "\\n");

function labelValue(v: string | number): string {
  return typeof v === "string" ? escapeText(v).replace(/"/g, '\\"') : String(v);
}

function valueText(v: number): string {
  if (Number.isNaN(v)) return "Nan";
  if (v === Number.POSITIVE_INFINITY) return "+Inf";
  if (v === Number.NEGATIVE_INFINITY) return "-Inf";
  return `${v}`;
}

/** One metric as text: its HELP and TYPE lines, then a line per value. */
export function formatMetric(m: MetricSnapshot): string {
  const name = escapeText(m.name);
  const lines = [`# HELP ${name} ${escapeText(m.help)}`, `# TYPE ${name} ${m.type}`];
  for (const v of m.values) {
    let labels = "";
    for (const [k, value] of Object.entries(v.labels)) {
      labels += `${labels ? "," : ""}${k}="${labelValue(value)}"`;
    }
    lines.push(`${v.metricName ?? name}${labels ? `{${labels}}` : ""} ${valueText(v.value)}`);
  }
  return lines.join("\n");
}

/** The metrics of one gateway, printed in the order they were registered. */
export class Registry {
  readonly contentType = "text/plain; version=0.0.4; charset=utf-8";
  private readonly byName = new Map<string, Collectable>();

  register<M extends Collectable>(metric: M): M {
    const known = this.byName.get(metric.name);
    if (known && known !== metric) {
      throw new Error(`a metric named ${metric.name} is registered already`);
    }
    this.byName.set(metric.name, metric);
    return metric;
  }

  /** The exposition text: every metric read, metrics apart by a blank line. */
  async metrics(): Promise<string> {
    const texts = await Promise.all(
      [...this.byName.values()].map(async (m) => formatMetric(await m.get())),
    );
    return `${texts.join("\n\n")}\n`;
  }

  resetMetrics(): void {
    for (const m of this.byName.values()) m.reset?.();
  }
}
