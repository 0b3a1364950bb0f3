import type { ModelTotal } from "../storage/types.ts";
import type { ModelTable } from "./cost.ts";
import { sumPerModel } from "./model-amounts.ts";
import { totalTokens } from "./token-usage.ts";

// Per-model usage as /stats and the admin API show it: raw tokens by kind,
// the weighted units quotas counted, requests, and spend where prices are set.

export interface ModelUsageRow {
  model: string;
  input_tokens: number;
  output_tokens: number;
  cache_read_tokens: number;
  cache_write_tokens: number;
  /** Raw tokens of every kind. */
  tokens: number;
  units: number;
  requests: number;
  /** In `currency`; null when the models file sets no prices. */
  spend: number | null;
  spend_micros: number;
}

export interface ModelUsageView {
  /** The models file's currency when it sets prices, else null. */
  currency: string | null;
  models: ModelUsageRow[];
}

/** Sums rows of several keys per model, ordered by model name. */
export function sumByModel(rows: readonly ModelTotal[]): ModelTotal[] {
  return sumPerModel(rows, "");
}

export function modelUsageView(rows: readonly ModelTotal[], table: ModelTable): ModelUsageView {
  return {
    currency: table.priced ? table.currency : null,
    models: rows.map((r) => ({
      model: r.model,
      input_tokens: r.input,
      output_tokens: r.output,
      cache_read_tokens: r.cacheRead,
      cache_write_tokens: r.cacheWrite,
      tokens: totalTokens(r),
      units: r.units,
      requests: r.requests,
      spend: table.priced ? r.spendMicros / 1_000_000 : null,
      spend_micros: r.spendMicros,
    })),
  };
}
