import { addModelAmounts, NO_MODEL_AMOUNTS } from "../models/model-amounts.ts";
import { totalTokens } from "../models/token-usage.ts";
import type { ModelUsage } from "../storage/types.ts";
import type { UsageEvent } from "./journal.ts";

// Per-model history is kept per hour, not per 5 minutes: it is for reading
// (who used which model, what it cost), never for admission, and an hour
// keeps it at most one row per key and model an hour, twelve times fewer
// rows than the usage buckets.

export const MODEL_BUCKET_MS = 60 * 60 * 1000;

/** The model an event is filed under when the journal does not say (written before models files). */
export const UNKNOWN_MODEL = "unknown";

/** Longest model name the history keeps as it is (the file backend allows 200). */
export const MODEL_NAME_MAX = 128;
/** What a longer name is filed under: names come from clients, and one must not bloat every row. */
export const LONG_MODEL_NAME = "(name over 128 characters)";

/** The name a request's usage is filed under in the per-model history. */
export function historyModelName(model: string): string {
  return model.length <= MODEL_NAME_MAX ? model : LONG_MODEL_NAME;
}

export function hourOf(t: number): number {
  return t - (((t % MODEL_BUCKET_MS) + MODEL_BUCKET_MS) % MODEL_BUCKET_MS);
}

/**
 * One row per (key, model, hour): a batch never touches a row twice. An
 * event without detail (an old journal) counts its units as raw output
 * tokens of an unknown model; one that cost nothing is left out.
 */
export function aggregateModels(events: UsageEvent[]): ModelUsage[] {
  const rows = new Map<string, ModelUsage>();
  for (const e of events) {
    // A request that cost nothing (refused upstream, the model list) is not
    // history: it would only let made-up model names add rows.
    if (e.tokens === 0 && (!e.detail || totalTokens(e.detail.usage) === 0)) continue;
    const model = e.detail ? historyModelName(e.detail.model) : UNKNOWN_MODEL;
    const bucketStart = hourOf(e.at);
    const id = JSON.stringify([e.keyId, model, bucketStart]);
    let row = rows.get(id);
    if (!row) {
      row = { keyId: e.keyId, model, bucketStart, ...NO_MODEL_AMOUNTS };
      rows.set(id, row);
    }
    const u = e.detail?.usage;
    addModelAmounts(row, {
      input: u?.input ?? 0,
      output: u ? u.output : e.tokens,
      cacheRead: u?.cacheRead ?? 0,
      cacheWrite: u?.cacheWrite ?? 0,
      units: e.tokens,
      requests: e.requests,
      spendMicros: e.detail?.spendMicros ?? 0,
    });
  }
  return [...rows.values()];
}
