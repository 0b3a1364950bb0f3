import {
  addModelAmounts,
  type ModelAmounts,
  NO_MODEL_AMOUNTS,
  sumPerModel,
} from "../../models/model-amounts.ts";
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
      row = { model: r.model, bucket_start: r.bucketStart, ...fileAmounts(NO_MODEL_AMOUNTS) };
      list.push(row);
    }
    const sum = fileRowAmounts(row);
    addModelAmounts(sum, r);
    Object.assign(row, fileAmounts(sum));
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
  const inRange = rows.filter((r) => r.bucket_start >= from && r.bucket_start < to);
  return sumPerModel(
    inRange.map((r) => ({ model: r.model, ...fileRowAmounts(r) })),
    keyId,
  );
}

/** A file row's amounts, by the names the rest of the code uses. */
export function fileRowAmounts(r: FileModelUsage): ModelAmounts {
  return {
    input: r.input_tokens,
    output: r.output_tokens,
    cacheRead: r.cache_read_tokens,
    cacheWrite: r.cache_write_tokens,
    units: r.units,
    requests: r.requests,
    spendMicros: r.spend_micros,
  };
}

/** Amounts by the file's own names. */
function fileAmounts(a: Readonly<ModelAmounts>): Omit<FileModelUsage, "model" | "bucket_start"> {
  return {
    input_tokens: a.input,
    output_tokens: a.output,
    cache_read_tokens: a.cacheRead,
    cache_write_tokens: a.cacheWrite,
    units: a.units,
    requests: a.requests,
    spend_micros: a.spendMicros,
  };
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
