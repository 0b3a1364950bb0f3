import type { Registry } from "prom-client";

// Metrics updated on every proxied request, counted in plain numbers and
// read out only when /metrics is scraped. prom-client hashes and checks the
// labels on each update, a measurable share of a request; here an update is
// one map lookup and an addition. The exposition is prom-client's own: these
// register with its registry and print exactly as its counters and
// histograms do.

type Labels<L extends string> = Record<L, string | number>;

interface Series<L extends string> {
  labels: Labels<L>;
}

interface MetricValue {
  labels: Record<string, string | number>;
  value: number;
  metricName?: string;
}

/** Label values in the declared order: one short string per series. */
function seriesKey<L extends string>(names: readonly L[], labels: Labels<L>): string {
  if (names.length === 1) return String(labels[names[0] as L]);
  if (names.length === 2) return `${labels[names[0] as L]}\u0000${labels[names[1] as L]}`;
  if (names.length === 3)
    return `${labels[names[0] as L]}\u0000${labels[names[1] as L]}\u0000${labels[names[2] as L]}`;
  let key = "";
  for (const n of names) key += `${labels[n]}\u0000`;
  return key;
}

abstract class LocalMetric<L extends string, S extends Series<L>> {
  readonly aggregator = "sum";
  protected readonly series = new Map<string, S>();

  constructor(
    readonly name: string,
    readonly help: string,
    protected readonly labelNames: readonly L[],
  ) {}

  protected at(labels: Labels<L>): S {
    const key = seriesKey(this.labelNames, labels);
    let s = this.series.get(key);
    if (!s) {
      // Kept as first given: prom-client prints them in that order too.
      s = this.create({ ...labels });
      this.series.set(key, s);
    }
    return s;
  }

  protected abstract create(labels: Labels<L>): S;
  abstract readonly type: string;
  protected abstract values(): MetricValue[];

  /** What prom-client's registry prints (the same shape its own metrics return). */
  async get() {
    return {
      name: this.name,
      help: this.help,
      type: this.type,
      aggregator: this.aggregator,
      values: this.values(),
    };
  }

  reset(): void {
    this.series.clear();
  }

  register(registry: Registry): this {
    // The registry asks only for name, get() and reset(); the cast names that.
    registry.registerMetric(this as unknown as Parameters<Registry["registerMetric"]>[0]);
    return this;
  }
}

interface CounterSeries<L extends string> extends Series<L> {
  value: number;
}

/** A Prometheus counter counted locally. */
export class LocalCounter<L extends string> extends LocalMetric<L, CounterSeries<L>> {
  readonly type = "counter";

  inc(labels: Labels<L>, by = 1): void {
    this.at(labels).value += by;
  }

  protected create(labels: Labels<L>): CounterSeries<L> {
    return { labels, value: 0 };
  }

  protected values(): MetricValue[] {
    return [...this.series.values()].map((s) => ({ labels: s.labels, value: s.value }));
  }
}

interface HistogramSeries<L extends string> extends Series<L> {
  /** Observations per bucket (not cumulative); the last is above every bound. */
  counts: number[];
  sum: number;
  count: number;
}

/** A Prometheus histogram counted locally, with fixed upper bounds. */
export class LocalHistogram<L extends string> extends LocalMetric<L, HistogramSeries<L>> {
  readonly type = "histogram";

  constructor(
    name: string,
    help: string,
    labelNames: readonly L[],
    private readonly bounds: readonly number[],
  ) {
    super(name, help, labelNames);
  }

  observe(labels: Labels<L>, value: number): void {
    const s = this.at(labels);
    let i = 0;
    while (i < this.bounds.length && value > (this.bounds[i] as number)) i++;
    s.counts[i] = (s.counts[i] ?? 0) + 1;
    s.sum += value;
    s.count++;
  }

  protected create(labels: Labels<L>): HistogramSeries<L> {
    return { labels, counts: new Array(this.bounds.length + 1).fill(0), sum: 0, count: 0 };
  }

  protected values(): MetricValue[] {
    const out: MetricValue[] = [];
    const bucket = `${this.name}_bucket`;
    for (const s of this.series.values()) {
      let cumulative = 0;
      this.bounds.forEach((le, i) => {
        cumulative += s.counts[i] ?? 0;
        out.push({ labels: { le, ...s.labels }, value: cumulative, metricName: bucket });
      });
      out.push({ labels: { le: "+Inf", ...s.labels }, value: s.count, metricName: bucket });
      out.push({ labels: s.labels, value: s.sum, metricName: `${this.name}_sum` });
      out.push({ labels: s.labels, value: s.count, metricName: `${this.name}_count` });
    }
    return out;
  }
}
