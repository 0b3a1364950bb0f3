import type { Context, MiddlewareHandler } from "hono";
import { getCookie } from "hono/cookie";
import type { AttemptLimiter } from "../../admin/attempt-limiter.ts";
import { AdminError } from "../../admin/errors.ts";
import { SESSION_COOKIE, type SessionSigner } from "../../admin/session.ts";
import type { Logger } from "../../log.ts";
import type { AccessLogEnv } from "../access-log.ts";
import { clientAddress } from "./address.ts";

export type AdminAuth =
  | { via: "bearer" }
  | { via: "cookie"; cookie: string; expiresAt: number; csrfToken: string };

export type AdminEnv = AccessLogEnv & { Variables: { admin: AdminAuth } };

export interface AdminAuthDeps {
  matchesAdminKey: (presented: string) => boolean;
  signer: SessionSigner;
  limiter: AttemptLimiter;
  clock: () => number;
  log: Logger;
}

const SAFE_METHODS = new Set(["GET", "HEAD", "OPTIONS"]);

/** Turns failures into 401/429 answers and keeps count of them per address. */
export function authFailures(deps: AdminAuthDeps) {
  return {
    /** 429 while the address has used up its failed attempts. */
    checkBlocked(c: Context<AdminEnv>, address: string): void {
      const waitMs = deps.limiter.blockedFor(address, deps.clock());
      if (waitMs > 0) {
        deps.log.warn(
          { reqId: c.get("access").requestId, address },
          "admin sign-in refused: too many failed attempts",
        );
        throw new AdminError(
          "too_many_attempts",
          "too many failed attempts from this address; try again later",
          {
            "retry-after": String(Math.ceil(waitMs / 1000)),
          },
        );
      }
    },
    /** 401; a wrong credential (not a missing or merely expired one) counts towards the limit. */
    reject(c: Context<AdminEnv>, address: string, reason: string, counts: boolean): never {
      const failures = counts ? deps.limiter.fail(address, deps.clock()) : undefined;
      // The presented key is never logged, not even in part.
      deps.log.warn(
        { reqId: c.get("access").requestId, address, reason, failures },
        "admin authentication failed",
      );
      throw new AdminError("unauthorized", messageFor(reason), { "www-authenticate": "Bearer" });
    },
  };
}

function messageFor(reason: string): string {
  if (reason === "session expired") return "the session has expired; sign in again";
  if (reason === "missing credentials") {
    return "admin credentials required: send 'Authorization: Bearer <ADMIN_API_KEY>' or sign in";
  }
  return "invalid admin credentials";
}

/**
 * Every admin route but sign-in and the OpenAPI document: the admin key as a
 * bearer token (scripts), or the session cookie (dashboard) with, on any
 * request that changes something, the session's CSRF token and, when the
 * browser sends an Origin, our own origin.
 */
export function requireAdmin(deps: AdminAuthDeps): MiddlewareHandler<AdminEnv> {
  const failures = authFailures(deps);
  return async function adminAuthentication(c, next) {
    const address = clientAddress(c);
    failures.checkBlocked(c, address);
    const header = c.req.header("authorization");
    if (header !== undefined) {
      const m = /^\s*bearer\s+(\S+)\s*$/i.exec(header);
      if (!m?.[1] || !deps.matchesAdminKey(m[1]))
        failures.reject(c, address, "wrong admin key", true);
      deps.limiter.succeed(address);
      c.set("admin", { via: "bearer" });
      return next();
    }
    const cookie = getCookie(c, SESSION_COOKIE);
    if (!cookie) return failures.reject(c, address, "missing credentials", false);
    const check = deps.signer.verify(cookie, deps.clock());
    if (!check.ok) {
      const expired = check.reason === "expired";
      return failures.reject(
        c,
        address,
        expired ? "session expired" : "forged session cookie",
        !expired,
      );
    }
    if (!SAFE_METHODS.has(c.req.method)) checkCsrf(c, deps.signer, cookie);
    c.set("admin", {
      via: "cookie",
      cookie,
      expiresAt: check.expiresAt,
      csrfToken: check.csrfToken,
    });
    return next();
  };
}

function checkCsrf(c: Context<AdminEnv>, signer: SessionSigner, cookie: string): void {
  const origin = c.req.header("origin");
  if (origin !== undefined && !sameOrigin(c, origin)) {
    throw new AdminError(
      "csrf_failed",
      `cross-origin request refused (Origin ${origin.slice(0, 200)})`,
    );
  }
  const token = c.req.header("x-csrf-token");
  if (!token || !signer.csrfMatches(cookie, token)) {
    throw new AdminError("csrf_failed", "missing or wrong X-CSRF-Token header for this session");
  }
}

/**
 * Origin against the host the browser addressed. A TLS-terminating proxy may
 * change scheme and port on the way in, so the forwarded host, when given,
 * stands for ours (a page elsewhere cannot set it: custom headers need a CORS
 * preflight, which /admin never grants).
 */
function sameOrigin(c: Context, origin: string): boolean {
  let host: string;
  try {
    host = new URL(origin).host;
  } catch {
    return false;
  }
  const own = c.req.header("x-forwarded-host") ?? c.req.header("host") ?? new URL(c.req.url).host;
  return host.toLowerCase() === own.split(",")[0]?.trim().toLowerCase();
}
