import { OpenAPIHono } from "@hono/zod-openapi";
import type { Context } from "hono";
import { bodyLimit } from "hono/body-limit";
import { HTTPException } from "hono/http-exception";
import { adminKeyMatcher } from "../../admin/admin-key.ts";
import { AttemptLimiter, defaultAttemptLimits } from "../../admin/attempt-limiter.ts";
import { TrustedProxies } from "../../admin/client-address.ts";
import { AdminError, describeIssues } from "../../admin/errors.ts";
import type { AdminDeps } from "../../admin/operations.ts";
import { sessionSigner } from "../../admin/session.ts";
import type { Config } from "../../config.ts";
import { errorBody } from "../../errors.ts";
import type { KeyCache } from "../../keys/cache.ts";
import type { Logger } from "../../log.ts";
import type { StorageHealth } from "../../storage/health.ts";
import type { AuditActor, Storage } from "../../storage/types.ts";
import { auditRoutes } from "./audit-routes.ts";
import { type AdminAuthDeps, type AdminEnv, requireAdmin, sourceOf } from "./auth.ts";
import { keyRoutes } from "./key-routes.ts";
import { sessionRoutes } from "./session-routes.ts";
import { storageDown } from "./storage-down.ts";
import { usageRoutes } from "./usage-routes.ts";

export interface AdminRouteDeps {
  adminKey: string;
  /** TRUSTED_PROXIES: whose forwarding headers are believed. */
  config: Pick<Config, "trustedProxies" | "plan"> & Partial<Pick<Config, "models">>;
  storage: Storage;
  keys: KeyCache;
  health: StorageHealth;
  clock: () => number;
  log: Logger;
  limits?: typeof defaultAttemptLimits;
}

/** Admin bodies are a few fields; anything near this is not one. */
const MAX_BODY_BYTES = 64 * 1024;

/** The admin API under /admin, with its OpenAPI document at /admin/openapi.json. */
export function adminRoutes(deps: AdminRouteDeps): OpenAPIHono<AdminEnv> {
  const app = new OpenAPIHono<AdminEnv>({
    defaultHook: (result) => {
      if (!result.success)
        throw new AdminError("validation_error", describeIssues(result.error.issues));
    },
  }).basePath("/admin");

  const auth: AdminAuthDeps = {
    matchesAdminKey: adminKeyMatcher(deps.adminKey),
    signer: sessionSigner(deps.adminKey),
    limiter: new AttemptLimiter(deps.limits ?? defaultAttemptLimits),
    proxies: new TrustedProxies(deps.config.trustedProxies),
    clock: deps.clock,
    log: deps.log,
  };
  const ops: AdminDeps = {
    storage: deps.storage,
    clock: deps.clock,
    plan: deps.config.plan,
    models: deps.config.models,
    // This instance obeys a change at once; others within their cache's TTL or on NOTIFY.
    onKeyChanged: (id) => deps.keys.invalidate(id),
  };

  app.use("*", async function adminRequestRules(c, next) {
    const hasBody =
      c.req.header("transfer-encoding") !== undefined ||
      (c.req.header("content-length") ?? "0") !== "0";
    if (hasBody && !/^application\/([\w.-]+\+)?json\b/i.test(c.req.header("content-type") ?? "")) {
      throw new AdminError(
        "validation_error",
        "request body must be JSON, sent with Content-Type: application/json",
      );
    }
    await next();
    c.header("cache-control", "no-store");
  });
  app.use(
    "*",
    bodyLimit({
      maxSize: MAX_BODY_BYTES,
      onError: () => {
        throw new AdminError(
          "validation_error",
          `request body is larger than ${MAX_BODY_BYTES} bytes`,
        );
      },
    }),
  );

  const guard = requireAdmin(auth);
  sessionRoutes(app, auth);
  // Who made a change, for the audit log: the client's address, and whether
  // it came from the dashboard (a session) or the API (the bearer key).
  const actorOf = (c: Context<AdminEnv>): AuditActor => ({
    kind: c.get("admin").via === "cookie" ? "dashboard" : "api",
    name: sourceOf(c, auth.proxies).address,
  });
  keyRoutes(app, ops, guard, actorOf);
  usageRoutes(app, ops, guard);
  auditRoutes(app, ops, guard);

  app.openAPIRegistry.registerComponent("securitySchemes", "bearer", {
    type: "http",
    scheme: "bearer",
    description: "The ADMIN_API_KEY, for scripts",
  });
  app.openAPIRegistry.registerComponent("securitySchemes", "session", {
    type: "apiKey",
    in: "cookie",
    name: "tollgate_session",
    description:
      "The dashboard session (POST /admin/session); non-GET requests also need X-CSRF-Token",
  });
  app.doc31("/openapi.json", {
    openapi: "3.1.0",
    info: {
      title: "Tollgate admin API",
      version: "1",
      description:
        'Manage API keys and read usage. Errors: {"error":{"code","message"}}. See docs/admin-api.md.',
    },
  });

  app.all("*", (c) => {
    throw new AdminError("not_found", `no route for ${c.req.method} ${c.req.path}`);
  });
  app.onError((err, c) => renderError(err, c, deps));
  return app;
}

async function renderError(
  err: Error,
  c: Context<AdminEnv>,
  deps: AdminRouteDeps,
): Promise<Response> {
  let e: AdminError;
  if (err instanceof AdminError) e = err;
  else if (err instanceof HTTPException && err.status === 400) {
    e = new AdminError("validation_error", "request body is not valid JSON");
  } else if (await storageDown(deps.storage, deps.health)) {
    deps.health.reportFailure(err);
    e = new AdminError("storage_unavailable", "the database cannot be reached; try again shortly");
  } else {
    c.get("access").error({ err }, "unhandled error in the admin API");
    e = new AdminError("internal_error", "internal error");
  }
  c.get("access").fields.error = e.code;
  return c.json(errorBody("admin", e.code, e.message), e.status, {
    ...e.headers,
    "cache-control": "no-store",
  });
}
