import type { TokenUsage } from "./token-usage.ts";

// What the per-model history adds up, row by row: raw tokens by kind, the
// weighted units quotas counted, requests and spend. Every place that sums
// such rows (a flush batch, the file backend, several keys for a view) adds
// them here, so a new amount is added in one place.

export interface ModelAmounts extends TokenUsage {
  units: number;
  requests: number;
  spendMicros: number;
}

export const NO_MODEL_AMOUNTS: Readonly<ModelAmounts> = {
  input: 0,
  output: 0,
  cacheRead: 0,
  cacheWrite: 0,
  units: 0,
  requests: 0,
  spendMicros: 0,
};

/** Adds `more` into `sum`, amount by amount. */
export function addModelAmounts(sum: ModelAmounts, more: Readonly<ModelAmounts>): void {
  sum.input += more.input;
  sum.output += more.output;
  sum.cacheRead += more.cacheRead;
  sum.cacheWrite += more.cacheWrite;
  sum.units += more.units;
  sum.requests += more.requests;
  sum.spendMicros += more.spendMicros;
}

export type ModelSum = ModelAmounts & { keyId: string; model: string };

/** Sums rows per model name, each sum filed under `keyId`, ordered by model name. */
export function sumPerModel(
  rows: Iterable<Readonly<ModelAmounts> & { model: string }>,
  keyId: string,
): ModelSum[] {
  const sums = new Map<string, ModelSum>();
  for (const r of rows) {
    let t = sums.get(r.model);
    if (!t) {
      t = { keyId, model: r.model, ...NO_MODEL_AMOUNTS };
      sums.set(r.model, t);
    }
    addModelAmounts(t, r);
  }
  return [...sums.values()].sort((a, b) => (a.model < b.model ? -1 : a.model > b.model ? 1 : 0));
}
