import type { ModelTotal, ModelUsage } from "../types.ts";
import type { FileModelUsage, RawKey } from "./schema.ts";

// Per-model hourly usage in the legacy file: a list of rows on each key
// entry (`tollgate_model_usage`), which the old gateway does not read.

/** Adds a batch's rows for one key to its entry, as it is in the file. */
export function chargeModels(entry: RawKey, rows: ModelUsage[]): void {
  if (rows.length === 0) return;
  const list = entry.tollgate_model_usage ?? [];
  for (const r of rows) {
    let row = list.find((x) => x.model === r.model && x.bucket_start === r.bucketStart);
    if (!row) {
      row = {
        model: r.model,
        bucket_start: r.bucketStart,
        input_tokens: 0,
        output_tokens: 0,
        cache_read_tokens: 0,
        cache_write_tokens: 0,
        units: 0,
        requests: 0,
        spend_micros: 0,
      };
      list.push(row);
    }
    row.input_tokens += r.input;
    row.output_tokens += r.output;
    row.cache_read_tokens += r.cacheRead;
    row.cache_write_tokens += r.cacheWrite;
    row.units += r.units;
    row.requests += r.requests;
    row.spend_micros += r.spendMicros;
  }
  entry.tollgate_model_usage = list;
}

/** One key's totals per model over hours that started in [from, to), by model name. */
export function modelTotals(
  keyId: string,
  rows: readonly FileModelUsage[],
  from: number,
  to: number,
): ModelTotal[] {
  const sums = new Map<string, ModelTotal>();
  for (const r of rows) {
    if (r.bucket_start < from || r.bucket_start >= to) continue;
    const t = sums.get(r.model) ?? {
      keyId,
      model: r.model,
      input: 0,
      output: 0,
      cacheRead: 0,
      cacheWrite: 0,
      units: 0,
      requests: 0,
      spendMicros: 0,
    };
    t.input += r.input_tokens;
    t.output += r.output_tokens;
    t.cacheRead += r.cache_read_tokens;
    t.cacheWrite += r.cache_write_tokens;
    t.units += r.units;
    t.requests += r.requests;
    t.spendMicros += r.spend_micros;
    sums.set(r.model, t);
  }
  return [...sums.values()].sort((a, b) => (a.model < b.model ? -1 : a.model > b.model ? 1 : 0));
}

/** Drops at most `budget` rows older than `before`; returns how many. */
export function pruneModels(entry: RawKey, before: number, budget: number): number {
  const list = entry.tollgate_model_usage;
  if (!list || budget <= 0) return 0;
  const old = list
    .filter((r) => r.bucket_start < before)
    .sort((a, b) => a.bucket_start - b.bucket_start)
    .slice(0, budget);
  if (old.length === 0) return 0;
  const drop = new Set(old);
  entry.tollgate_model_usage = list.filter((r) => !drop.has(r));
  return old.length;
}
