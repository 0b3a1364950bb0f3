import { createHmac, randomBytes, timingSafeEqual } from "node:crypto";

// Dashboard sessions without server state: the cookie carries its expiry and
// a nonce, signed with a key derived from ADMIN_API_KEY, so every instance
// that shares the admin key accepts it, and changing the admin key ends every
// session. The CSRF token is derived from the cookie with a second derived
// key: a page can only learn it from the session answer (same origin), never
// from the cookie, which is HttpOnly.

export const SESSION_COOKIE = "tollgate_session";
export const SESSION_TTL_MS = 8 * 60 * 60 * 1000;
const VERSION = "v1";

export type SessionCheck =
  | { ok: true; expiresAt: number; csrfToken: string }
  | { ok: false; reason: "malformed" | "bad_signature" | "expired" };

export interface Session {
  cookie: string;
  expiresAt: number;
  csrfToken: string;
}

export interface SessionSigner {
  issue(now: number): Session;
  verify(cookie: string, now: number): SessionCheck;
  /** Whether `presented` is the CSRF token of the session `cookie` (constant time). */
  csrfMatches(cookie: string, presented: string): boolean;
}

const mac = (key: Buffer, data: string) => createHmac("sha256", key).update(data).digest();

export function sessionSigner(adminKey: string): SessionSigner {
  const signKey = mac(Buffer.from(adminKey, "utf8"), "tollgate session signing v1");
  const csrfKey = mac(Buffer.from(adminKey, "utf8"), "tollgate csrf v1");
  const csrfOf = (cookie: string) => mac(csrfKey, cookie).toString("base64url");

  return {
    issue(now) {
      const expiresAt = now + SESSION_TTL_MS;
      const body = `${VERSION}.${expiresAt.toString(36)}.${randomBytes(16).toString("base64url")}`;
      const cookie = `${body}.${mac(signKey, body).toString("base64url")}`;
      return { cookie, expiresAt, csrfToken: csrfOf(cookie) };
    },

    verify(cookie, now) {
      const parts = cookie.split(".");
      if (parts.length !== 4 || parts[0] !== VERSION) return { ok: false, reason: "malformed" };
      const [version, exp, nonce, sig] = parts as [string, string, string, string];
      const given = Buffer.from(sig, "base64url");
      const expected = mac(signKey, `${version}.${exp}.${nonce}`);
      if (given.length !== expected.length || !timingSafeEqual(given, expected)) {
        return { ok: false, reason: "bad_signature" };
      }
      const expiresAt = Number.parseInt(exp, 36);
      if (!Number.isSafeInteger(expiresAt) || expiresAt <= now)
        return { ok: false, reason: "expired" };
      return { ok: true, expiresAt, csrfToken: csrfOf(cookie) };
    },

    csrfMatches(cookie, presented) {
      const expected = Buffer.from(csrfOf(cookie));
      const given = Buffer.from(presented);
      return given.length === expected.length && timingSafeEqual(given, expected);
    },
  };
}
