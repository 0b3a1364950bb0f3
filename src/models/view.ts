import type { ModelTotal } from "../storage/types.ts";
import type { ModelTable } from "./cost.ts";

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
  const sums = new Map<string, ModelTotal>();
  for (const r of rows) {
    const t = sums.get(r.model);
    if (!t) {
      sums.set(r.model, { ...r, keyId: "" });
      continue;
    }
    t.input += r.input;
    t.output += r.output;
    t.cacheRead += r.cacheRead;
    t.cacheWrite += r.cacheWrite;
    t.units += r.units;
    t.requests += r.requests;
    t.spendMicros += r.spendMicros;
  }
  return [...sums.values()].sort((a, b) => (a.model < b.model ? -1 : a.model > b.model ? 1 : 0));
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
      tokens: r.input + r.output + r.cacheRead + r.cacheWrite,
      units: r.units,
      requests: r.requests,
      spend: table.priced ? r.spendMicros / 1_000_000 : null,
      spend_micros: r.spendMicros,
    })),
  };
}
