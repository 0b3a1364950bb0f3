// The admin API as the dashboard uses it: the session cookie (HttpOnly, set by
// the server) authenticates; the CSRF token is kept in memory only and sent on
// every mutation. Nothing here is ever written to storage.

import { formatDuration } from "./format.js";

export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

async function failure(res) {
  const body = await res.json().catch(() => null);
  const code = body?.error?.code ?? "http_error";
  if (code === "too_many_attempts") {
    const wait = Number(res.headers.get("retry-after") ?? 900) * 1000;
    return new ApiError(
      res.status,
      code,
      `Too many failed attempts. Try again in ${formatDuration(wait)}.`,
    );
  }
  return new ApiError(res.status, code, body?.error?.message ?? `HTTP ${res.status}`);
}

/** `onSessionLost` runs when a call is refused for want of a session (it expired, or signed out elsewhere). */
export function createAdminApi({ onSessionLost }) {
  let csrfToken = null;

  async function call(method, path, body) {
    const headers = {};
    if (body !== undefined) headers["content-type"] = "application/json";
    if (method !== "GET" && csrfToken !== null) headers["x-csrf-token"] = csrfToken;
    let res;
    try {
      res = await fetch(path, {
        method,
        headers,
        body: body === undefined ? undefined : JSON.stringify(body),
        credentials: "same-origin",
        cache: "no-store",
      });
    } catch {
      throw new ApiError(0, "network", "Could not reach the gateway.");
    }
    if (res.ok) return res.status === 204 ? null : res.json();
    const err = await failure(res);
    if (res.status === 401 && path !== "/admin/session") {
      csrfToken = null;
      onSessionLost();
    }
    throw err;
  }

  const key = (id) => `/admin/keys/${encodeURIComponent(id)}`;

  return {
    /** The current session, or null when signed out. */
    async session() {
      try {
        const s = await call("GET", "/admin/session");
        csrfToken = s.csrf_token;
        return s;
      } catch (err) {
        if (err instanceof ApiError && err.status === 401) return null;
        throw err;
      }
    },
    async signIn(adminKey) {
      const s = await call("POST", "/admin/session", { admin_key: adminKey });
      csrfToken = s.csrf_token;
      return s;
    },
    async signOut() {
      try {
        await call("DELETE", "/admin/session");
      } finally {
        csrfToken = null;
      }
    },
    listKeys: (query) => call("GET", `/admin/keys?${new URLSearchParams(query)}`),
    getKey: (id) => call("GET", key(id)),
    createKey: (fields) => call("POST", "/admin/keys", fields),
    updateKey: (id, fields) => call("PATCH", key(id), fields),
    rotateKey: (id) => call("POST", `${key(id)}/rotate`),
    deleteKey: (id) => call("DELETE", key(id)),
    keyUsage: (id, query) => call("GET", `${key(id)}/usage?${query}`),
    usage: (query) => call("GET", `/admin/usage?${query}`),
    audit: (query) => call("GET", `/admin/audit?${new URLSearchParams(query)}`),
  };
}
