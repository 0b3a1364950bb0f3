import type { Dialect } from "../errors.ts";

// Which headers cross the gateway. Requests: an allowlist, so a key holder
// cannot pick the billed organisation or project, present other credentials,
// or forge the addresses the upstream sees. Responses: everything but what
// belongs to one connection or to the operator's account. Pure: no I/O.

/** What the SDKs and coding agents need the upstream to see. */
const REQUEST_ALLOWED = new Set([
  "content-type",
  "accept",
  "user-agent",
  "anthropic-version",
  "anthropic-beta",
  "openai-beta",
  "idempotency-key",
]);

/** The official SDKs' telemetry and retry headers (`x-stainless-retry-count`, …). */
const REQUEST_ALLOWED_PREFIX = "x-stainless-";

/**
 * Hop-by-hop headers apply to one connection and are never forwarded
 * (RFC 9110 §7.6.1, plus those named in `Connection`). Also gone: framing and
 * encoding our server redoes, cookies, and the upstream account's own
 * identity and rate-limit figures (the key's quota headers replace the
 * latter; see `keepRetryAfter`).
 */
const RESPONSE_DROPPED = new Set([
  "connection",
  "keep-alive",
  "proxy-authenticate",
  "proxy-authorization",
  "proxy-connection",
  "te",
  "trailer",
  "transfer-encoding",
  "upgrade",
  "content-encoding",
  "content-length",
  "set-cookie",
  "openai-organization",
  "openai-project",
  "anthropic-organization-id",
]);
const RESPONSE_DROPPED_PREFIXES = ["x-ratelimit-", "anthropic-ratelimit-"];

export interface HeaderPolicy {
  /** Extra request header names the operator lets through (lower case). */
  extraRequestHeaders: ReadonlySet<string>;
  /** When set, the only `anthropic-beta` values passed on; others are dropped. */
  anthropicBetas: ReadonlySet<string> | null;
}

export const defaultHeaderPolicy: HeaderPolicy = {
  extraRequestHeaders: new Set(),
  anthropicBetas: null,
};

/**
 * Request header names the gateway never forwards, whatever the operator
 * adds: credentials, cookies, framing and forwarding headers. Config refuses
 * them in `EXTRA_REQUEST_HEADERS`.
 */
export const NEVER_FORWARDED = new Set([
  "authorization",
  "x-api-key",
  "api-key",
  "cookie",
  "host",
  "content-length",
  "transfer-encoding",
  "connection",
  "keep-alive",
  "te",
  "trailer",
  "upgrade",
  "proxy-authorization",
  "forwarded",
  "x-real-ip",
]);

export function isNeverForwarded(name: string): boolean {
  return NEVER_FORWARDED.has(name) || name.startsWith("x-forwarded-");
}

export function upstreamHeaders(
  incoming: Headers,
  dialect: Dialect,
  apiKey: string,
  policy: HeaderPolicy = defaultHeaderPolicy,
): Headers {
  const out = new Headers();
  incoming.forEach((value, name) => {
    if (!allowedRequestHeader(name, policy)) return;
    if (name === "anthropic-beta" && policy.anthropicBetas) {
      const kept = value
        .split(",")
        .map((s) => s.trim())
        .filter((s) => policy.anthropicBetas?.has(s));
      if (kept.length > 0) out.set(name, kept.join(","));
      return;
    }
    out.set(name, value);
  });
  if (dialect === "anthropic") out.set("x-api-key", apiKey);
  else out.set("authorization", `Bearer ${apiKey}`);
  return out;
}

function allowedRequestHeader(name: string, policy: HeaderPolicy): boolean {
  if (isNeverForwarded(name)) return false;
  return (
    REQUEST_ALLOWED.has(name) ||
    name.startsWith(REQUEST_ALLOWED_PREFIX) ||
    policy.extraRequestHeaders.has(name)
  );
}

/**
 * The upstream's response headers a client may see. `Retry-After` is the
 * upstream account's figure; it is kept only on a 429 or 503, where it is the
 * one thing that tells the client when the shared upstream takes requests
 * again. On a success it would only mislead next to the key's own headers.
 */
export function clientHeaders(upstream: Headers, status = 200): Headers {
  const out = new Headers();
  const connectionListed = listedInConnection(upstream);
  const keepRetryAfter = status === 429 || status === 503;
  upstream.forEach((value, name) => {
    if (RESPONSE_DROPPED.has(name) || connectionListed.has(name)) return;
    if (RESPONSE_DROPPED_PREFIXES.some((p) => name.startsWith(p))) return;
    if ((name === "retry-after" || name === "retry-after-ms") && !keepRetryAfter) return;
    out.append(name, value);
  });
  return out;
}

/** Headers named in `Connection` are hop-by-hop too (RFC 9110 §7.6.1). */
function listedInConnection(h: Headers): Set<string> {
  const v = h.get("connection");
  if (!v) return new Set();
  return new Set(v.split(",").map((s) => s.trim().toLowerCase()));
}
