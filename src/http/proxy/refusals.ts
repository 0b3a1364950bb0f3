import { type Dialect, GatewayError } from "../../errors.ts";
import type { Metrics } from "../../metrics/registry.ts";
import type { OutputCap } from "../../proxy/output-cap.ts";
import type { Refusal } from "../../proxy/upstream-refusals.ts";
import type { Admission } from "../../quota/admission.ts";
import { quotaExceededHeaders, quotaHeaders, waitHeaders } from "../../quota/headers.ts";
import { type WindowState, windowName } from "../../quota/window.ts";
import { WINDOW_MS } from "../../time/buckets.ts";
import type { AccessLog } from "../access-log.ts";

// The gateway's own 429s, in the words of why: the key's quota (admission
// turned the request down) or the shared upstream's refusal.

/** The 429 for a key already at its limit of requests in flight. */
export function concurrencyRefusal(
  limit: number,
  dialect: Dialect,
  access: AccessLog,
  metrics: Metrics,
): GatewayError {
  access.fields.quota = "concurrency";
  metrics.concurrencyRejections.inc({ dialect });
  return new GatewayError(
    "concurrency_limit",
    `this key may have ${limit} request${limit === 1 ? "" : "s"} in flight at once; retry when one finishes (this is not the token quota)`,
    { "retry-after": "1" },
  );
}

/** The 429 for a request admission turned down, in the words of why. */
export function admissionRefusal(
  decision: Extract<Admission, { ok: false }>,
  dialect: Dialect,
  output: OutputCap | null,
  now: number,
  access: AccessLog,
  metrics: Metrics,
): GatewayError {
  const { state } = decision;
  access.fields.quota = decision.reason === "spent" ? "exceeded" : decision.reason;
  metrics.quotaRejections.inc({ dialect });
  if (decision.reason === "spent") {
    return new GatewayError(
      "quota_exceeded",
      `token quota of ${state.limit} per ${windowName(state.spanMs)} is used up (${state.used} used); it frees up gradually as usage ages out`,
      quotaExceededHeaders(dialect, state, now, state.spanMs),
    );
  }
  if (decision.reason === "reserved") {
    return new GatewayError(
      "quota_reserved",
      `the rest of this key's token quota (${state.limit - state.used} of ${state.limit}) is reserved by its other requests in flight; retry when they finish`,
      waitHeaders(dialect, state, now, decision.retryAfterMs, state.spanMs),
    );
  }
  const field = output?.field ?? "max_tokens";
  const never = !Number.isFinite(decision.retryAfterMs);
  const advice = never
    ? `, and ${decision.needed} is more than its whole limit`
    : "; it fits once enough usage ages out";
  const what = `this request may use up to ${decision.needed} tokens (${field} ${output?.named}${output && output.answers > 1 ? ` for each of ${output.answers} answers` : ""}, plus its input estimate), so lower ${field}`;
  return new GatewayError(
    "quota_exceeded",
    `${what}: only ${decision.remaining} of the key's ${state.limit} tokens${state.spanMs === WINDOW_MS ? "" : ` per ${windowName(state.spanMs)}`} remain${advice}`,
    waitHeaders(dialect, state, now, decision.retryAfterMs, state.spanMs),
  );
}

/**
 * The gateway's own 429 for a refusal of the upstream's: it carries the key's
 * quota headers (untouched: it is not the key's quota) and says whose limit
 * it is. A spent plan says until when, with `x-should-retry: false`, so the
 * SDKs and coding agents stop instead of retrying for minutes.
 */
export function upstreamRefusal(
  refusal: Refusal,
  dialect: Dialect,
  state: WindowState,
  now: number,
): GatewayError {
  const headers = quotaHeaders(dialect, state, now);
  if (refusal.kind === "busy") {
    const s = Math.max(1, Math.ceil(refusal.waitMs / 1000));
    return new GatewayError(
      "upstream_busy",
      `the upstream has too many requests at once (${refusal.source}); retry in ${s} s. This is not this key's quota.`,
      { ...headers, "retry-after": String(s) },
    );
  }
  const until = refusal.until === null ? null : new Date(refusal.until).toISOString();
  const wait = refusal.until === null ? null : Math.max(1, Math.ceil((refusal.until - now) / 1000));
  return new GatewayError(
    "upstream_plan_spent",
    `the shared upstream plan is spent ${until ? `until ${until}` : "for now"} (${refusal.source}); every key of this gateway waits for it. This is not this key's quota.`,
    {
      ...headers,
      ...(wait === null ? {} : { "retry-after": String(wait) }),
      "x-should-retry": "false",
    },
  );
}
