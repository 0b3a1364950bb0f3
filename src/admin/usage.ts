import { hourOf } from "../accounting/model-usage.ts";
import { maskedKey } from "../keys/secret.ts";
import { ModelTable } from "../models/cost.ts";
import { modelUsageView, sumByModel } from "../models/view.ts";
import type { KeyRecord } from "../storage/types.ts";
import { AdminError } from "./errors.ts";
import type { AdminDeps } from "./operations.ts";
import { planState } from "./plan.ts";
import type { HolderUsageSeries, KeyUsageSeries, UsageQuery, UsageTotals } from "./schemas.ts";
import { resolveRange, toSeries } from "./usage-range.ts";

// Usage history: one key's, the key holder's own, and the totals across keys.

const TOP_KEYS = 50;

export async function keyUsage(
  deps: AdminDeps,
  id: string,
  q: UsageQuery,
): Promise<KeyUsageSeries> {
  const range = resolveRange(q, deps.clock());
  const key = await deps.storage.getKeyById(id);
  if (!key) throw new AdminError("not_found", `no key with id ${id}`);
  const [buckets, models] = await Promise.all([
    deps.storage.usageBetween(id, range.from, range.to),
    deps.storage.modelUsage(hourOf(range.from), range.to, id),
  ]);
  return {
    key_id: id,
    ...toSeries(buckets, range),
    by_model: modelUsageView(models, deps.models ?? ModelTable.flat),
  };
}

/** The key holder's own history (`/stats/usage`), no further back than history is kept. */
export async function holderUsage(
  deps: AdminDeps,
  key: KeyRecord,
  q: UsageQuery,
  retentionMs: number,
): Promise<HolderUsageSeries> {
  const now = deps.clock();
  const range = resolveRange(q, now, now - retentionMs);
  const [buckets, models] = await Promise.all([
    deps.storage.usageBetween(key.id, range.from, range.to),
    deps.storage.modelUsage(hourOf(range.from), range.to, key.id),
  ]);
  return {
    key: maskedKey(key.keyPrefix),
    ...toSeries(buckets, range),
    by_model: modelUsageView(models, deps.models ?? ModelTable.flat),
  };
}

export async function usageTotals(deps: AdminDeps, q: UsageQuery): Promise<UsageTotals> {
  const now = deps.clock();
  const range = resolveRange(q, now);
  const { storage } = deps;
  const [buckets, perKey, keysTotal, active, plan, models] = await Promise.all([
    storage.usageBetween(null, range.from, range.to),
    storage.usageByKey(range.from, range.to),
    storage.countKeys(),
    storage.listKeys({ limit: 1, offset: 0, now, status: "active" }),
    planState(storage, now, deps.plan ?? { fiveHour: null, weekly: null }),
    storage.modelUsage(hourOf(range.from), range.to),
  ]);
  const used = perKey.filter((t) => t.tokens > 0 || t.requests > 0);
  const top = [...used]
    .sort((a, b) => b.tokens - a.tokens || b.requests - a.requests || (a.keyId < b.keyId ? -1 : 1))
    .slice(0, TOP_KEYS);
  // At most TOP_KEYS lookups, by primary key; a key deleted meanwhile drops out.
  const records = await Promise.all(top.map((t) => storage.getKeyById(t.keyId)));
  const byKey = top.flatMap((t, i) => {
    const k = records[i];
    return k
      ? [{ id: k.id, name: k.name, prefix: k.keyPrefix, tokens: t.tokens, requests: t.requests }]
      : [];
  });
  const series = toSeries(buckets, range);
  return {
    ...series,
    keys_total: keysTotal,
    keys_active: active.total,
    keys_with_usage: used.length,
    by_key: byKey,
    plan: plan.map((w) => ({
      window: w.window,
      capacity: w.capacity,
      allowed: w.allowed,
      used: w.used,
      allowed_ratio: w.allowedRatio,
      used_ratio: w.usedRatio,
    })),
    by_model: modelUsageView(sumByModel(models), deps.models ?? ModelTable.flat),
  };
}
