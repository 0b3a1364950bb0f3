import type {
  Collectable,
  MetricSnapshot,
  MetricType,
  MetricValue,
  Registry,
} from "./exposition.ts";

// The gateway's metrics, counted in plain numbers and read out only when
// /metrics is scraped: an update on the request path is one map lookup and
// an addition (a general metrics library hashes and checks the labels on
// each one, a measurable share of a request). Labels are printed in the
// order first given, and histograms as cumulative buckets, `le` first.

type Labels<L extends string> = Record<L, string | number>;

interface Series<L extends string> {
  labels: Labels<L>;
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

abstract class LocalMetric<L extends string, S extends Series<L>> implements Collectable {
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
      // Kept as first given: the labels print in that order.
      s = this.create({ ...labels });
      this.series.set(key, s);
    }
    return s;
  }

  protected abstract create(labels: Labels<L>): S;
  abstract readonly type: MetricType;
  protected abstract values(): MetricValue[];

  get(): MetricSnapshot {
    return { name: this.name, help: this.help, type: this.type, values: this.values() };
  }

  reset(): void {
    this.series.clear();
  }

  register(registry: Registry): this {
    return registry.register(this);
  }
}

interface CounterSeries<L extends string> extends Series<L> {
  value: number;
}

/** A Prometheus counter counted locally. */
export class LocalCounter<L extends string> extends LocalMetric<L, CounterSeries<L>> {
  readonly type = "counter" as const;

  /** Adds `by`; a count that is not a finite number of zero or more is ignored (a counter only goes up). */
  inc(labels: Labels<L>, by = 1): void {
    if (!(by >= 0 && by < Number.POSITIVE_INFINITY)) return;
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
  readonly type = "histogram" as const;

  constructor(
    name: string,
    help: string,
    labelNames: readonly L[],
    private readonly bounds: readonly number[],
  ) {
    super(name, help, labelNames);
  }

  /** Counts `value` in its bucket; NaN is ignored, as it would spoil the sum for good. */
  observe(labels: Labels<L>, value: number): void {
    if (Number.isNaN(value)) return;
    const s = this.at(labels);
    let i = 0;
    while (i < this.bounds.length && value > (this.bounds[i] as number)) i++;
    s.counts[i] = (s.counts[i] ?? 0) + 1;
    s.sum += value;
    s.count++;
  }

  /** Starts timing now; the function it returns observes the seconds since. */
  startTimer(labels: Labels<L>): () => number {
    const start = performance.now();
    return () => {
      const seconds = (performance.now() - start) / 1000;
      this.observe(labels, seconds);
      return seconds;
    };
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

/** A Prometheus gauge without labels, set as things change (0 until then). */
export class LocalGauge implements Collectable {
  readonly type = "gauge" as const;
  private value = 0;

  constructor(
    readonly name: string,
    readonly help: string,
  ) {}

  set(value: number): void {
    this.value = value;
  }

  get(): MetricSnapshot {
    return {
      name: this.name,
      help: this.help,
      type: this.type,
      values: [{ labels: {}, value: this.value }],
    };
  }

  reset(): void {
    this.value = 0;
  }

  register(registry: Registry): this {
    return registry.register(this);
  }
}

/** What a scrape-time metric reads: one value, several labelled ones, or nothing (absent). */
export type Reading = number | undefined | readonly MetricValue[];

/**
 * A metric whose values are read from their source at each scrape: a gauge
 * of something the gateway already knows, or a counter the process keeps
 * (CPU time). A reading of `undefined` leaves the metric without values.
 */
export class ReadMetric implements Collectable {
  constructor(
    readonly name: string,
    readonly help: string,
    private readonly read: () => Reading | Promise<Reading>,
    readonly type: MetricType = "gauge",
  ) {}

  async get(): Promise<MetricSnapshot> {
    const r = await this.read();
    const values =
      typeof r === "number" ? [{ labels: {}, value: r }] : r === undefined ? [] : [...r];
    return { name: this.name, help: this.help, type: this.type, values };
  }
}
