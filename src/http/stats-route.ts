import type { Context } from "hono";
import type { UsageLedger } from "../accounting/ledger.ts";
import { AdminError, describeIssues } from "../admin/errors.ts";
import { iso } from "../admin/key-view.ts";
import { usageQuery } from "../admin/schemas.ts";
import { holderUsage } from "../admin/usage.ts";
import { GatewayError } from "../errors.ts";
import type { KeyCache } from "../keys/cache.ts";
import { maskedKey } from "../keys/secret.ts";
import { ModelTable } from "../models/cost.ts";
import { type ModelUsageView, modelUsageView } from "../models/view.ts";
import { bindingWindow, keySpanMs, windowStates } from "../quota/admission.ts";
import type { UsageView } from "../quota/usage-view.ts";
import type { WindowState } from "../quota/window.ts";
import type { StorageHealth } from "../storage/health.ts";
import type { KeyRecord, Storage } from "../storage/types.ts";
import { WEEK_MS } from "../time/buckets.ts";
import { TimeoutError, withTimeout } from "../util/timeout.ts";
import type { AccessLogEnv } from "./access-log.ts";
import { storageDown } from "./admin/storage-down.ts";
import { authenticate } from "./authenticate.ts";

export interface StatsDeps {
  storage: Storage;
  keys: KeyCache;
  usage: UsageView;
  ledger: UsageLedger;
  clock: () => number;
  defaultModel: string;
  health: StorageHealth;
  /** MODELS_FILE, for the currency of spend; flat when unset. */
  models?: ModelTable;
}

/**
 * The key behind a key holder's request; an expired or disabled key may look
 * at its own usage. The key's display prefix goes into the access log.
 */
async function holderKey(c: Context<AccessLogEnv>, keys: KeyCache, now: number, url: URL) {
  const key = await authenticate(keys, c.req.raw, url, now, { allowInactive: true });
  c.get("access").fields.key = key.keyPrefix;
  return key;
}

/**
 * `GET /stats`: the caller's own key and usage. The field names are the old
 * gateway's, kept as they were for the scripts that read them. Usage not yet
 * written to the database is included, so a response shows up here at once.
 */
export function statsHandler(deps: StatsDeps) {
  return async function stats(c: Context<AccessLogEnv>): Promise<Response> {
    const now = deps.clock();
    const url = new URL(c.req.url);
    const cached = await holderKey(c, deps.keys, now, url);
    // Fresh totals and buckets from the database, unless it is out or does
    // not answer within STATS_WAIT_MS: then what this instance knows is the
    // answer (a hung database must not hang /stats).
    // The per-model history is read at the same time, under the same bound.
    const history = modelHistory(deps, cached.id, now);
    // The key's own row is kept if it came in time even when the buckets did
    // not: the memory's copy of the key holds its totals as last read, and
    // does not count what was written since.
    let freshKey: KeyRecord | undefined;
    const keyRead = readKey(deps, cached).then((k) => {
      freshKey = k;
      return k;
    });
    const fresh = await withTimeout(freshRead(deps, keyRead), STATS_WAIT_MS).catch(() => null);
    const key = fresh?.key ?? freshKey ?? cached;
    // Where the totals came from, for whoever reads the log after an outage.
    if (key === cached) c.get("access").fields.totals = "memory";
    const buckets = fresh?.buckets ?? deps.usage.knownBuckets(key.id);
    const states = windowStates(buckets, key.tokenLimit, key.weeklyLimit, now);
    const [state, weekly] = states as [WindowState, WindowState | undefined];
    const pending = deps.ledger.pendingTotals(key.id);
    // From memory, the key's totals are those it was read with: this
    // instance's usage written to the database since then is added, as it
    // has left the pending totals.
    const mark = key === cached ? deps.keys.flushMarkOf(key) : undefined;
    const since = mark === undefined ? NOTHING_SINCE : deps.ledger.flushedSince(key.id, mark);
    const byModel = await history;
    const lastUsed = Math.max(key.lastUsedAt ?? 0, pending.lastUsedAt ?? 0);
    return c.json({
      key: maskedKey(key.keyPrefix),
      name: key.name,
      model: key.model ?? deps.defaultModel,
      token_limit_per_5h: key.tokenLimit,
      token_limit_per_week: key.weeklyLimit,
      expiry_date: iso(key.expiresAt),
      created_at: iso(key.createdAt),
      last_used: lastUsed > 0 ? iso(lastUsed) : null,
      is_expired: key.expiresAt !== null && key.expiresAt <= now,
      is_disabled: key.disabled,
      current_usage: windowUsage(state),
      weekly_usage: weekly ? windowUsage(weekly) : null,
      binding_window: bindingWindow(states).spanMs === WEEK_MS ? "week" : "5h",
      total_lifetime_tokens: key.totalTokens + since.tokens + pending.tokens,
      total_requests: key.totalRequests + since.requests + pending.requests,
      usage_by_model: byModel,
    });
  };
}

const NOTHING_SINCE = { tokens: 0, requests: 0 };

/** How long /stats/usage waits for the history before answering 503. */
const HISTORY_WAIT_MS = 5000;
/** How long /stats waits for the database before answering from memory. */
const STATS_WAIT_MS = 1000;
const MODEL_HISTORY_WAIT_MS = STATS_WAIT_MS;

/**
 * The key's totals from the database, then its buckets from a read that
 * began after them, so the window usage includes every charge in the totals.
 */
async function freshRead(deps: StatsDeps, keyRead: Promise<KeyRecord>) {
  const key = await keyRead;
  const mark = deps.usage.readMark();
  const buckets = await deps.usage.buckets(key.id, { readAfter: mark, spanMs: keySpanMs(key) });
  return { key, buckets };
}

/**
 * The key's row from the database (its totals), or the cached one when the
 * database is out. (A connection the server closed is the storage's to try
 * again on another.) The cached row's totals are those it was read with,
 * without what was written since.
 */
async function readKey(deps: StatsDeps, cached: KeyRecord): Promise<KeyRecord> {
  if (deps.health.degraded) return cached;
  try {
    return (await deps.storage.getKeyById(cached.id)) ?? cached;
  } catch (err) {
    deps.health.reportFailure(err);
    return cached;
  }
}

/**
 * The key's per-model history, as far back as it is kept: what was written
 * to the database (a response shows up here after the next flush, within
 * FLUSH_INTERVAL_MS). Null while the database is out or slower than
 * MODEL_HISTORY_WAIT_MS: the rest of /stats is answered from memory and must
 * not wait on it.
 */
async function modelHistory(
  deps: StatsDeps,
  keyId: string,
  now: number,
): Promise<ModelUsageView | null> {
  if (deps.health.degraded) return null;
  try {
    const rows = await withTimeout(
      deps.storage.modelUsage(0, now + 3_600_000, keyId),
      MODEL_HISTORY_WAIT_MS,
    );
    return modelUsageView(rows, deps.models ?? ModelTable.flat);
  } catch (err) {
    // A slow answer is not an outage: the health probe decides that.
    if (!(err instanceof TimeoutError)) deps.health.reportFailure(err);
    return null;
  }
}

/** One window as /stats shows it (the old gateway's field names). */
function windowUsage(s: WindowState) {
  return {
    tokens_used_in_current_window: s.used,
    window_started_at: iso(s.oldestStart),
    window_ends_at: iso(s.oldestStart + s.spanMs),
    remaining_tokens: s.remaining,
  };
}

export interface StatsUsageDeps {
  storage: Storage;
  keys: KeyCache;
  clock: () => number;
  health: StorageHealth;
  /** How far back usage history is kept (USAGE_RETENTION_DAYS). */
  retentionMs: number;
  /** MODELS_FILE, for the currency of spend; flat when unset. */
  models?: ModelTable;
}

/**
 * `GET /stats/usage`: the caller's own usage history, in the admin API's
 * shape (`key` holds the masked key instead of an id), no further back than
 * history is kept. Errors keep the /stats dialect (OpenAI's).
 */
export function statsUsageHandler(deps: StatsUsageDeps) {
  return async function statsUsage(c: Context<AccessLogEnv>): Promise<Response> {
    const now = deps.clock();
    const url = new URL(c.req.url);
    const key = await holderKey(c, deps.keys, now, url);
    const query = Object.fromEntries(
      ["from", "to", "step"].flatMap((n) => {
        const v = url.searchParams.get(n);
        return v === null ? [] : [[n, v]];
      }),
    );
    const parsed = usageQuery.safeParse(query);
    if (!parsed.success)
      throw new GatewayError("invalid_request", describeIssues(parsed.error.issues));
    // History lives only in the database: while it is known to be out, say so
    // now rather than after a query has waited for it to fail.
    if (deps.health.degraded) throw historyUnavailable();
    try {
      return c.json(
        await withTimeout(
          holderUsage(
            { storage: deps.storage, clock: deps.clock, models: deps.models },
            key,
            parsed.data,
            deps.retentionMs,
          ),
          HISTORY_WAIT_MS,
        ),
        200,
        { "cache-control": "no-store" },
      );
    } catch (err) {
      if (err instanceof AdminError && err.code === "validation_error") {
        throw new GatewayError("invalid_request", err.message);
      }
      // A database that does not answer at all (hung, before the health
      // probe notices) must not hold the request.
      if (err instanceof TimeoutError) throw historyUnavailable();
      if (err instanceof GatewayError || !(await storageDown(deps.storage, deps.health))) throw err;
      deps.health.reportFailure(err);
      throw historyUnavailable();
    }
  };
}

const historyUnavailable = () =>
  new GatewayError("storage_unavailable", "usage history is unavailable; try again shortly");
