import type { Dialect } from "../errors.ts";
import { canonicalPath } from "./request.ts";

// Which client paths reach the upstream, and how each is charged. One table:
// anything not in it (nor added by the operator) is answered here and never
// forwarded. Pure: no I/O.

/**
 * - `metered`: the answer (whole, or a stream's final usage) reports the
 *   tokens, and the key is charged them.
 * - `free`: costs the upstream account no generation (model lists, token
 *   counting), so nothing is charged.
 * - `unmetered`: added by the operator (`EXTRA_PATHS`); forwarded uncharged
 *   and shared by every key.
 */
export type Charging = "metered" | "free" | "unmetered";

export interface Endpoint {
  method: "GET" | "POST";
  path: string;
  dialect: Dialect;
  charging: Charging;
  /** Answers may be streamed (server-sent events), charged from their final usage. */
  streams: boolean;
}

export const ENDPOINTS: readonly Endpoint[] = [
  {
    method: "POST",
    path: "/v1/chat/completions",
    dialect: "openai",
    charging: "metered",
    streams: true,
  },
  {
    method: "POST",
    path: "/v1/completions",
    dialect: "openai",
    charging: "metered",
    streams: true,
  },
  {
    method: "POST",
    path: "/v1/embeddings",
    dialect: "openai",
    charging: "metered",
    streams: false,
  },
  { method: "POST", path: "/v1/responses", dialect: "openai", charging: "metered", streams: true },
  { method: "GET", path: "/v1/models", dialect: "openai", charging: "free", streams: false },
  {
    method: "POST",
    path: "/v1/messages",
    dialect: "anthropic",
    charging: "metered",
    streams: true,
  },
  {
    method: "POST",
    path: "/v1/messages/count_tokens",
    dialect: "anthropic",
    charging: "free",
    streams: false,
  },
];

/** The known endpoints of each path (one per method). */
const BY_PATH = new Map<string, Endpoint[]>();
for (const e of ENDPOINTS) BY_PATH.set(e.path, [...(BY_PATH.get(e.path) ?? []), e]);

/** A `.` or `..` path segment. */
const DOT_SEGMENT = /(^|\/)\.\.?(\/|$)/;

function hasControlCharacter(path: string): boolean {
  for (let i = 0; i < path.length; i++) {
    const c = path.charCodeAt(i);
    if (c < 0x20 || c === 0x7f) return true;
  }
  return false;
}

export type PathCheck =
  | { ok: true; path: string; endpoint: Endpoint | null }
  | { ok: false; reason: "malformed" | "not_found" | "method"; message: string; allow?: string };

/**
 * One decoding, then an exact match. Forms an upstream or a proxy in between
 * might read differently from us are refused outright rather than guessed at:
 * encoded slashes and backslashes, `;` parameters, dot segments (plain or
 * encoded), and anything still encoded after one decoding (`%252F`).
 */
export function checkPath(
  method: string,
  rawPath: string,
  extraPaths: ReadonlySet<string>,
): PathCheck {
  const malformed = (why: string): PathCheck => ({
    ok: false,
    reason: "malformed",
    message: `path ${JSON.stringify(rawPath)} is not accepted: ${why}`,
  });
  if (/%(2f|5c)/i.test(rawPath)) return malformed("encoded slashes are not allowed");
  let path = rawPath;
  if (rawPath.includes("%")) {
    try {
      path = decodeURIComponent(rawPath);
    } catch {
      return malformed("it is not valid percent-encoding");
    }
  }
  if (path.includes("\\")) return malformed("backslashes are not allowed");
  if (path.includes(";")) return malformed("';' parameters are not allowed");
  if (path.includes("%")) return malformed("it is encoded more than once");
  if (hasControlCharacter(path)) return malformed("control characters are not allowed");
  if (DOT_SEGMENT.test(path)) return malformed("'.' and '..' segments are not allowed");

  const canonical = canonicalPath(path);
  const upper = method.toUpperCase();
  const known = BY_PATH.get(canonical) ?? [];
  if (known.length > 0) {
    const endpoint = known.find(
      (e) => e.method === upper || (upper === "HEAD" && e.method === "GET"),
    );
    if (endpoint) return { ok: true, path: canonical, endpoint };
    const allow = known.map((e) => e.method).join(", ");
    return {
      ok: false,
      reason: "method",
      message: `${upper} is not supported on ${canonical}; use ${allow}`,
      allow,
    };
  }
  if (extraPaths.has(canonical)) return { ok: true, path: canonical, endpoint: null };
  return {
    ok: false,
    reason: "not_found",
    message: `${canonical} is not an endpoint this gateway forwards`,
  };
}

/** The dialect a path's errors are written in: Anthropic for /v1/messages…, else OpenAI. */
export function dialectOfPath(path: string): Dialect {
  const p = canonicalPath(path);
  return p === "/v1/messages" || p.startsWith("/v1/messages/") ? "anthropic" : "openai";
}

/** An `EXTRA_PATHS` entry checked: null when usable, else why not. */
export function checkExtraPath(entry: string): string | null {
  if (!entry.startsWith("/v1/")) return `"${entry}" must start with /v1/`;
  if (!/^\/v1(\/[A-Za-z0-9_.:-]+)+$/.test(entry))
    return `"${entry}" must be a plain path (letters, digits, '_', '-', '.', ':' between slashes)`;
  if (entry.split("/").some((s) => s === "." || s === ".."))
    return `"${entry}" must not hold '.' or '..' segments`;
  if (ENDPOINTS.some((e) => e.path === entry)) return `"${entry}" is already forwarded and metered`;
  return null;
}

/** The fields `deferredWork` reads: a body goes upstream as sent only if each is plain (as-sent.ts). */
export const DEFERRED_WORK_FIELDS = ["background"] as const;

/**
 * Work the upstream would bill later, outside this request: an answer run in
 * the background (`background: true` on /v1/responses) or kept and fetched
 * later. Null when the body may be forwarded.
 */
export function deferredWork(path: string, body: Record<string, unknown>): string | null {
  if (path === "/v1/responses" && body.background === true) {
    return "background responses are not supported: their tokens would be spent after this request ends, where the gateway cannot charge them to your key; send the request without 'background'";
  }
  return null;
}
