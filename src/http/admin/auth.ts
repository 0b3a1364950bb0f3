import type { Context, MiddlewareHandler } from "hono";
import { getCookie } from "hono/cookie";
import type { AttemptLimiter } from "../../admin/attempt-limiter.ts";
import type { TrustedProxies } from "../../admin/client-address.ts";
import { AdminError } from "../../admin/errors.ts";
import { SESSION_COOKIE, type SessionSigner } from "../../admin/session.ts";
import type { Logger } from "../../log.ts";
import type { AccessLogEnv } from "../access-log.ts";
import { type RequestSource, requestSource } from "./address.ts";
import { clearedSessionCookie } from "./session-cookie.ts";

export type AdminAuth =
  | { via: "bearer" }
  | { via: "cookie"; cookie: string; expiresAt: number; csrfToken: string };

export type AdminEnv = AccessLogEnv & {
  Variables: { admin: AdminAuth; source: RequestSource };
};

export interface AdminAuthDeps {
  matchesAdminKey: (presented: string) => boolean;
  signer: SessionSigner;
  limiter: AttemptLimiter;
  proxies: TrustedProxies;
  clock: () => number;
  log: Logger;
}

const SAFE_METHODS = new Set(["GET", "HEAD", "OPTIONS"]);

/** The request's source, worked out once per request. */
export function sourceOf(c: Context<AdminEnv>, proxies: TrustedProxies): RequestSource {
  let source = c.get("source");
  if (!source) {
    source = requestSource(c, proxies);
    c.set("source", source);
  }
  return source;
}

type Reason =
  | "missing credentials"
  | "wrong admin key"
  | "session expired"
  | "session cookie not signed with this admin key";

/** Turns failures into 401/429 answers and keeps count of them per address. */
export function authFailures(deps: AdminAuthDeps) {
  const where = (c: Context<AdminEnv>) => {
    const s = sourceOf(c, deps.proxies);
    return { reqId: c.get("access").requestId, address: s.address, proxy: s.proxy };
  };
  /** 429 while the address has used up its failed attempts. */
  const checkBlocked = (c: Context<AdminEnv>): void => {
    const waitMs = deps.limiter.blockedFor(sourceOf(c, deps.proxies).limiterKey, deps.clock());
    if (waitMs > 0) {
      deps.log.warn(where(c), "admin sign-in refused: too many failed attempts");
      throw new AdminError(
        "too_many_attempts",
        "too many failed attempts from this address; try again later",
        {
          "retry-after": String(Math.ceil(waitMs / 1000)),
        },
      );
    }
  };
  return {
    /**
     * 401. Only a wrong admin key counts towards the limit: that is a guess.
     * A missing credential is not, and neither is a session cookie that fails
     * its check (an old admin key's, or mangled): forging an HMAC is not a way
     * to guess the admin key, and the browser holding it is told to drop it.
     * Once an address has used up its guesses, a wrong key gets 429. The
     * right key and a valid session are never refused: behind a reverse
     * proxy every client may share one address, and anyone could otherwise
     * lock the operator out by guessing badly on purpose.
     */
    reject(c: Context<AdminEnv>, reason: Reason): never {
      const counts = reason === "wrong admin key";
      if (counts) checkBlocked(c);
      const source = sourceOf(c, deps.proxies);
      const failures = counts ? deps.limiter.fail(source.limiterKey, deps.clock()) : undefined;
      // The presented key is never logged, not even in part.
      // A page opened before signing in asks without credentials: routine, not a warning.
      const level = reason === "missing credentials" ? "info" : "warn";
      deps.log[level]({ ...where(c), reason, failures }, "admin authentication failed");
      const headers: Record<string, string> = { "www-authenticate": "Bearer" };
      if (reason === "session expired" || reason.startsWith("session cookie")) {
        headers["set-cookie"] = clearedSessionCookie(source.https);
      }
      throw new AdminError("unauthorized", messageFor(reason), headers);
    },
  };
}

function messageFor(reason: Reason): string {
  if (reason === "session expired") return "the session has expired; sign in again";
  if (reason === "missing credentials") {
    return "admin credentials required: send 'Authorization: Bearer <ADMIN_API_KEY>' or sign in";
  }
  if (reason === "wrong admin key") return "invalid admin credentials";
  return "the session is no longer valid (the admin key may have changed); sign in again";
}

/** The token of `Authorization: Bearer <token>`; null for any other scheme. */
function bearerToken(header: string | undefined): string | null {
  const m = /^\s*bearer(?:\s+(.*?))?\s*$/i.exec(header ?? "");
  return m ? (m[1] ?? "") : null;
}

/**
 * Every admin route but sign-in and the OpenAPI document: the admin key as a
 * bearer token (scripts), or the session cookie (dashboard) with, on any
 * request that changes something, the session's CSRF token and, when the
 * browser sends an Origin, our own origin. Another Authorization scheme (a
 * proxy's Basic auth in front of the dashboard) is not ours: the cookie decides.
 */
export function requireAdmin(deps: AdminAuthDeps): MiddlewareHandler<AdminEnv> {
  const failures = authFailures(deps);
  return async function adminAuthentication(c, next) {
    const token = bearerToken(c.req.header("authorization"));
    if (token !== null) {
      if (token === "") return failures.reject(c, "missing credentials");
      if (!deps.matchesAdminKey(token)) failures.reject(c, "wrong admin key");
      c.set("admin", { via: "bearer" });
      return next();
    }
    const cookie = getCookie(c, SESSION_COOKIE);
    if (!cookie) return failures.reject(c, "missing credentials");
    const check = deps.signer.verify(cookie, deps.clock());
    if (!check.ok) {
      return failures.reject(
        c,
        check.reason === "expired"
          ? "session expired"
          : "session cookie not signed with this admin key",
      );
    }
    if (!SAFE_METHODS.has(c.req.method)) checkCsrf(c, deps, cookie);
    c.set("admin", {
      via: "cookie",
      cookie,
      expiresAt: check.expiresAt,
      csrfToken: check.csrfToken,
    });
    return next();
  };
}

function checkCsrf(c: Context<AdminEnv>, deps: AdminAuthDeps, cookie: string): void {
  const origin = c.req.header("origin");
  if (origin !== undefined && !sameOrigin(origin, sourceOf(c, deps.proxies).host)) {
    throw new AdminError(
      "csrf_failed",
      `cross-origin request refused (Origin ${origin.slice(0, 200)})`,
    );
  }
  const token = c.req.header("x-csrf-token");
  if (!token || !deps.signer.csrfMatches(cookie, token)) {
    throw new AdminError("csrf_failed", "missing or wrong X-CSRF-Token header for this session");
  }
}

/**
 * Origin against the host the browser addressed: the Host header, or behind a
 * trusted proxy its X-Forwarded-Host. Hosts only: a TLS-terminating proxy
 * changes the scheme (and maybe the port) on the way in. A page elsewhere
 * cannot set these headers itself: custom headers need a CORS preflight,
 * which /admin never grants.
 */
function sameOrigin(origin: string, ownHost: string): boolean {
  try {
    return new URL(origin).host.toLowerCase() === ownHost;
  } catch {
    return false;
  }
}
