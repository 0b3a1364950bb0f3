import { createRoute, type OpenAPIHono } from "@hono/zod-openapi";
import type { Context } from "hono";
import { deleteCookie, setCookie } from "hono/cookie";
import { sessionObject, signInBody } from "../../admin/schemas.ts";
import { SESSION_COOKIE, SESSION_TTL_MS } from "../../admin/session.ts";
import { clientAddress } from "./address.ts";
import { type AdminAuthDeps, type AdminEnv, authFailures, requireAdmin } from "./auth.ts";
import { errorResponses, json, security } from "./responses.ts";

/** Secure when the browser reached us over https (directly or through a proxy that says so). */
function overHttps(c: Context): boolean {
  return new URL(c.req.url).protocol === "https:" || c.req.header("x-forwarded-proto") === "https";
}

const signIn = createRoute({
  method: "post",
  path: "/session",
  tags: ["session"],
  summary: "Sign in to the dashboard with the admin key",
  description:
    "Sets the HttpOnly session cookie (8 hours). Send the returned csrf_token as X-CSRF-Token on every non-GET request made with the cookie.",
  request: { body: { content: { "application/json": { schema: signInBody } }, required: true } },
  responses: {
    200: json(sessionObject, "Signed in"),
    400: errorResponses[400],
    401: errorResponses[401],
    429: errorResponses[429],
  },
});

export function sessionRoutes(app: OpenAPIHono<AdminEnv>, deps: AdminAuthDeps): void {
  const failures = authFailures(deps);
  const guard = requireAdmin(deps);

  app.openapi(signIn, (c) => {
    const address = clientAddress(c);
    failures.checkBlocked(c, address);
    if (!deps.matchesAdminKey(c.req.valid("json").admin_key)) {
      failures.reject(c, address, "wrong admin key", true);
    }
    deps.limiter.succeed(address);
    const s = deps.signer.issue(deps.clock());
    setCookie(c, SESSION_COOKIE, s.cookie, {
      httpOnly: true,
      sameSite: "Strict",
      path: "/",
      secure: overHttps(c),
      maxAge: SESSION_TTL_MS / 1000,
    });
    c.header("cache-control", "no-store");
    return c.json(
      { csrf_token: s.csrfToken, expires_at: new Date(s.expiresAt).toISOString() },
      200,
    );
  });

  app.openapi(
    createRoute({
      method: "get",
      path: "/session",
      tags: ["session"],
      summary: "The current dashboard session",
      middleware: guard,
      security,
      responses: {
        200: json(sessionObject, "Signed in"),
        401: errorResponses[401],
        429: errorResponses[429],
      },
    }),
    (c) => {
      const auth = c.get("admin");
      if (auth.via !== "cookie") {
        return failures.reject(c, clientAddress(c), "missing credentials", false);
      }
      c.header("cache-control", "no-store");
      return c.json(
        { csrf_token: auth.csrfToken, expires_at: new Date(auth.expiresAt).toISOString() },
        200,
      );
    },
  );

  app.openapi(
    createRoute({
      method: "delete",
      path: "/session",
      tags: ["session"],
      summary: "Sign out (clears the cookie)",
      middleware: guard,
      security,
      responses: {
        204: { description: "Signed out" },
        401: errorResponses[401],
        403: errorResponses[403],
        429: errorResponses[429],
      },
    }),
    (c) => {
      deleteCookie(c, SESSION_COOKIE, {
        path: "/",
        httpOnly: true,
        sameSite: "Strict",
        secure: overHttps(c),
      });
      return c.body(null, 204);
    },
  );
}
