import { generateCookie } from "hono/cookie";
import { SESSION_COOKIE, SESSION_TTL_MS } from "../../admin/session.ts";

// The session cookie's attributes, in one place for setting and clearing:
// a browser only replaces a cookie sent with the same name, path and
// (for Secure ones, over https) the same Secure flag.

const attributes = (https: boolean) =>
  ({ httpOnly: true, sameSite: "Strict", path: "/", secure: https }) as const;

/** Set-Cookie for a new session (8 hours). */
export const sessionCookie = (value: string, https: boolean): string =>
  generateCookie(SESSION_COOKIE, value, { ...attributes(https), maxAge: SESSION_TTL_MS / 1000 });

/** Set-Cookie that makes the browser drop the session cookie. */
export const clearedSessionCookie = (https: boolean): string =>
  generateCookie(SESSION_COOKIE, "", { ...attributes(https), maxAge: 0 });
