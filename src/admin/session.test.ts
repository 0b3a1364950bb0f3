import { describe, expect, test } from "bun:test";
import { SESSION_TTL_MS, sessionSigner } from "./session.ts";

const KEY = "admin-key-for-session-tests";
const T = 1_800_000_000_000;

describe("sessionSigner", () => {
  test("a cookie issued by one instance is accepted by another with the same admin key", () => {
    const s = sessionSigner(KEY).issue(T);
    const other = sessionSigner(KEY).verify(s.cookie, T + 1000);
    expect(other).toEqual({ ok: true, expiresAt: T + SESSION_TTL_MS, csrfToken: s.csrfToken });
  });

  test("sessions are 8 hours long", () => {
    const signer = sessionSigner(KEY);
    const s = signer.issue(T);
    expect(s.expiresAt - T).toBe(8 * 3_600_000);
    expect(signer.verify(s.cookie, s.expiresAt - 1).ok).toBe(true);
    expect(signer.verify(s.cookie, s.expiresAt)).toEqual({ ok: false, reason: "expired" });
  });

  test("changing the admin key ends every session", () => {
    const s = sessionSigner(KEY).issue(T);
    expect(sessionSigner(`${KEY}-rotated`).verify(s.cookie, T)).toEqual({
      ok: false,
      reason: "bad_signature",
    });
  });

  test("a tampered cookie is refused: longer expiry, other nonce, cut signature, garbage", () => {
    const signer = sessionSigner(KEY);
    const { cookie } = signer.issue(T);
    const [v, exp, nonce, sig] = cookie.split(".") as [string, string, string, string];
    const later = (Number.parseInt(exp, 36) + SESSION_TTL_MS).toString(36);
    expect(signer.verify([v, later, nonce, sig].join("."), T).ok).toBe(false);
    expect(signer.verify([v, exp, `${nonce}x`, sig].join("."), T).ok).toBe(false);
    expect(signer.verify([v, exp, nonce, sig.slice(0, 10)].join("."), T).ok).toBe(false);
    for (const junk of ["", "v1", "a.b.c.d", "v2.x.y.z", `${cookie}.extra`]) {
      expect(signer.verify(junk, T).ok).toBe(false);
    }
  });

  test("each sign-in gets its own cookie and CSRF token; a token fits its session only", () => {
    const signer = sessionSigner(KEY);
    const a = signer.issue(T);
    const b = signer.issue(T);
    expect(a.cookie).not.toBe(b.cookie);
    expect(a.csrfToken).not.toBe(b.csrfToken);
    expect(signer.csrfMatches(a.cookie, a.csrfToken)).toBe(true);
    expect(signer.csrfMatches(a.cookie, b.csrfToken)).toBe(false);
    expect(signer.csrfMatches(a.cookie, "")).toBe(false);
    expect(signer.csrfMatches(a.cookie, a.csrfToken.slice(1))).toBe(false);
    // The token is not derivable from the cookie without the admin key.
    expect(sessionSigner("another-admin-key-000").csrfMatches(a.cookie, a.csrfToken)).toBe(false);
  });
});
