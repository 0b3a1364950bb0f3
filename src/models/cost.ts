import { matchesModel } from "../keys/allowed-models.ts";
import { inPeak, type PeakHours, parseHours } from "./peak.ts";
import type { ModelEntry, ModelsFile } from "./schema.ts";
import { TOKEN_KINDS, type TokenKind, type TokenUsage, totalTokens } from "./token-usage.ts";

// What a response costs a key: weighted units (what quotas count) and, where
// the operator set prices, spend. Pure: the clock is an argument.
//
// Arithmetic is on integers, so nothing drifts: every weight and price is
// kept in millionths, a request's units are rounded UP to a whole unit, and
// its spend is rounded UP to a whole micro-unit of the currency.

const MICRO = 1_000_000n;
const FLAT_WEIGHTS = Object.freeze({ input: 1, output: 1 });
/** Model names whose rule is remembered at once. */
const SEEN_MAX = 1024;

export interface Cost {
  /** Weighted units charged to the key's quotas. */
  units: number;
  /** Spend in micro-units of `currency` (1 = 0.000001); 0 when the model has no prices. */
  spendMicros: number;
}

type PerKind = Record<TokenKind, bigint>;

interface Rule {
  patterns: string[];
  /** Multiplier × weight per kind, in millionths, off peak. */
  weights: PerKind;
  peaks: { hours: PeakHours; weights: PerKind }[];
  /** Price per million tokens per kind, in micro-units. */
  prices: PerKind | null;
}

const micros = (v: number): bigint => BigInt(Math.round(v * 1_000_000));

function weightsOf(entry: ModelEntry, multiplier: number): PerKind {
  const w = entry.weights;
  return {
    input: micros(multiplier * w.input),
    output: micros(multiplier * w.output),
    cacheRead: micros(multiplier * w.cache_read),
    cacheWrite: micros(multiplier * w.cache_write),
  };
}

function ruleOf(entry: ModelEntry): Rule {
  const peaks =
    entry.peak === undefined ? [] : Array.isArray(entry.peak) ? entry.peak : [entry.peak];
  const p = entry.prices;
  return {
    // Case-insensitive: upstreams take `GLM-4.7` and `glm-4.7` alike, so a
    // key must not escape a rule by changing the case of a name.
    patterns: (Array.isArray(entry.match) ? entry.match : [entry.match]).map((p) =>
      p.toLowerCase(),
    ),
    weights: weightsOf(entry, entry.multiplier),
    peaks: peaks.map((peak) => ({
      hours: { ...parseHours(peak.hours), timeZone: peak.time_zone, multiplier: peak.multiplier },
      weights: weightsOf(entry, peak.multiplier),
    })),
    prices: p
      ? {
          input: micros(p.input),
          output: micros(p.output),
          cacheRead: micros(p.cache_read),
          cacheWrite: micros(p.cache_write),
        }
      : null,
  };
}

/** Σ tokens × factor (in millionths), divided back and rounded up. */
function weighted(usage: TokenUsage, factors: PerKind): number {
  let sum = 0n;
  for (const kind of TOKEN_KINDS) sum += BigInt(usage[kind]) * factors[kind];
  return Number((sum + MICRO - 1n) / MICRO);
}

/**
 * The operator's model table. Rules are tried in the file's order, names
 * matched without regard to case, and the first whose pattern matches wins, so a specific rule goes before a broad
 * one (`glm-4.5-air` before `glm-4.5*`). A model no rule matches weighs 1
 * per token and has no price.
 */
export class ModelTable {
  private readonly rules: Rule[];
  readonly currency: string;
  /** Whether any rule sets prices (the views show spend only then). */
  readonly priced: boolean;

  constructor(file: ModelsFile | null) {
    this.rules = (file?.models ?? []).map(ruleOf);
    this.currency = file?.currency ?? "USD";
    this.priced = this.rules.some((r) => r.prices !== null);
  }

  /** A table where every weight is 1: the behaviour without MODELS_FILE. */
  static readonly flat = new ModelTable(null);

  /** The rule each model name met, remembered (a bounded number of names). */
  private readonly seen = new Map<string, Rule | undefined>();

  private ruleFor(model: string | undefined): Rule | undefined {
    if (model === undefined || this.rules.length === 0) return undefined;
    if (this.seen.has(model)) return this.seen.get(model);
    const name = model.toLowerCase();
    const rule = this.rules.find((r) => r.patterns.some((p) => matchesModel(p, name)));
    // Names come from clients: forget them all rather than grow without bound.
    if (this.seen.size >= SEEN_MAX) this.seen.clear();
    this.seen.set(model, rule);
    return rule;
  }

  /**
   * Units per token for admission, before usage is known: the dearest of the
   * input kinds (an estimate cannot tell cached input from fresh) and the
   * output weight, at `at`'s peak or off-peak rate. 1 and 1 without a rule.
   */
  weights(model: string | undefined, at: number): { input: number; output: number } {
    const rule = this.ruleFor(model);
    if (!rule) return FLAT_WEIGHTS;
    const w = rule.peaks.find((p) => inPeak(at, p.hours))?.weights ?? rule.weights;
    const input = Math.max(Number(w.input), Number(w.cacheRead), Number(w.cacheWrite));
    return { input: input / 1e6, output: Number(w.output) / 1e6 };
  }

  /** Units and spend of `usage` on `model` at epoch ms `at`. */
  cost(model: string | undefined, usage: TokenUsage, at: number): Cost {
    const rule = this.ruleFor(model);
    if (!rule) return { units: totalTokens(usage), spendMicros: 0 };
    const peak = rule.peaks.find((p) => inPeak(at, p.hours));
    return {
      units: weighted(usage, peak ? peak.weights : rule.weights),
      spendMicros: rule.prices ? weighted(usage, rule.prices) : 0,
    };
  }
}
