import { createRoute, type OpenAPIHono } from "@hono/zod-openapi";
import { sessionObject, signInBody } from "../../admin/schemas.ts";
import { type AdminAuthDeps, type AdminEnv, authFailures, requireAdmin, sourceOf } from "./auth.ts";
import { errorResponses, json, security } from "./responses.ts";
import { clearedSessionCookie, sessionCookie } from "./session-cookie.ts";

/** What the page learns of its session (every admin answer is sent no-store). */
const sessionAnswer = (s: { csrfToken: string; expiresAt: number }) => ({
  csrf_token: s.csrfToken,
  expires_at: new Date(s.expiresAt).toISOString(),
});

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

  // Any cookie sent along (a stale one included) is ignored: the new one replaces it.
  app.openapi(signIn, (c) => {
    if (!deps.matchesAdminKey(c.req.valid("json").admin_key)) {
      failures.reject(c, "wrong admin key");
    }
    const s = deps.signer.issue(deps.clock());
    // Secure when the browser reached us over https (directly, or through a
    // trusted proxy that says so in X-Forwarded-Proto).
    c.header("set-cookie", sessionCookie(s.cookie, sourceOf(c, deps.proxies).https));
    return c.json(sessionAnswer(s), 200);
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
        return failures.reject(c, "missing credentials");
      }
      return c.json(sessionAnswer(auth), 200);
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
      c.header("set-cookie", clearedSessionCookie(sourceOf(c, deps.proxies).https));
      return c.body(null, 204);
    },
  );
}
