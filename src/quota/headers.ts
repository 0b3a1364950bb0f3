import type { Dialect } from "../errors.ts";
import type { WindowState } from "./window.ts";

/** Longest wait an SDK should sit through by itself; beyond it, it should report at once. */
const RETRY_BY_ITSELF_MS = 60_000;

/** OpenAI writes durations like "6m0s" or "1.5s". */
export function goDuration(ms: number): string {
  const totalSec = Math.max(0, Math.ceil(ms / 1000));
  const h = Math.floor(totalSec / 3600);
  const m = Math.floor((totalSec % 3600) / 60);
  const s = totalSec % 60;
  if (h > 0) return `${h}h${m}m${s}s`;
  if (m > 0) return `${m}m${s}s`;
  return `${s}s`;
}

/** Quota headers on every proxied response, in the names each dialect's clients already read. */
export function quotaHeaders(
  dialect: Dialect,
  state: WindowState,
  now: number,
): Record<string, string> {
  const remaining = state.remaining;
  if (dialect === "anthropic") {
    return {
      "anthropic-ratelimit-tokens-limit": String(state.limit),
      "anthropic-ratelimit-tokens-remaining": String(Math.max(0, remaining)),
      "anthropic-ratelimit-tokens-reset": new Date(state.resetAt).toISOString(),
    };
  }
  return {
    "x-ratelimit-limit-tokens": String(state.limit),
    "x-ratelimit-remaining-tokens": String(Math.max(0, remaining)),
    "x-ratelimit-reset-tokens": goDuration(state.resetAt - now),
  };
}

/**
 * Headers of the 429 for a spent quota. `Retry-After` is in whole seconds,
 * rounded up. A wait over a minute also carries `x-should-retry: false`, which
 * the official SDKs obey: they report the error at once instead of retrying
 * for minutes.
 */
export function quotaExceededHeaders(
  dialect: Dialect,
  state: WindowState,
  now: number,
  windowMs: number,
): Record<string, string> {
  // A limit of 0 never admits anything: say so with the longest honest wait.
  return waitHeaders(
    dialect,
    state,
    now,
    state.retryAfterMs > 0 ? state.retryAfterMs : windowMs,
    windowMs,
  );
}

/**
 * Headers of a 429 whose wait is `waitMs` (Infinity: the request can never be
 * admitted as it is). The usual rule: `Retry-After` in whole seconds, and
 * `x-should-retry: false` when retrying by itself cannot help soon.
 */
export function waitHeaders(
  dialect: Dialect,
  state: WindowState,
  now: number,
  waitMs: number,
  windowMs: number,
): Record<string, string> {
  const never = !Number.isFinite(waitMs);
  const wait = never ? windowMs : waitMs;
  const headers: Record<string, string> = {
    ...quotaHeaders(dialect, state, now),
    "retry-after": String(Math.max(1, Math.ceil(wait / 1000))),
  };
  if (never || wait > RETRY_BY_ITSELF_MS) headers["x-should-retry"] = "false";
  return headers;
}
