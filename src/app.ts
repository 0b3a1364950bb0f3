import { Hono } from "hono";
import { cors } from "hono/cors";
import type { UsageLedger } from "./accounting/ledger.ts";
import type { Config } from "./config.ts";
import { errorResponse, GatewayError } from "./errors.ts";
import { type AccessLogEnv, accessLog } from "./http/access-log.ts";
import type * as AdminRoutes from "./http/admin/routes.ts";
import { health } from "./http/health-route.ts";
import { idleExemption } from "./http/idle-exemption.ts";
import { metricsHandler } from "./http/metrics-route.ts";
import { requireKey } from "./http/proxy/key.ts";
import { proxyHandler } from "./http/proxy/route.ts";
import { proxyTarget } from "./http/proxy/target.ts";
import { readyHandler } from "./http/ready-route.ts";
import { statsHandler, statsUsageHandler } from "./http/stats-route.ts";
import type { KeyCache } from "./keys/cache.ts";
import type { Logger } from "./log.ts";
import type { Metrics } from "./metrics/registry.ts";
import { routeLabel } from "./metrics/routes.ts";
import type { BackupScheduler } from "./ops/backup/scheduler.ts";
import { dialectOfPath } from "./proxy/endpoints.ts";
import type { UsageView } from "./quota/usage-view.ts";
import type { StorageHealth } from "./storage/health.ts";
import type { Storage } from "./storage/types.ts";
import { webRoutes } from "./web/routes.ts";

export interface AppDeps {
  config: Config;
  storage: Storage;
  keys: KeyCache;
  usage: UsageView;
  ledger: UsageLedger;
  clock: () => number;
  log: Logger;
  health: StorageHealth;
  metrics: Metrics;
  /** False once shutdown has begun: readiness turns `down` so load balancers drain. */
  accepting: () => boolean;
  /** The backup scheduler, when scheduled backups are on (for readiness details). */
  backups?: () => BackupScheduler | undefined;
}

const isAdminPath = (path: string) => path === "/admin" || path.startsWith("/admin/");

export function createApp(deps: AppDeps): Hono<AccessLogEnv> {
  const app = new Hono<AccessLogEnv>();

  app.use("*", accessLog(deps.log));
  app.use("*", async function countRequests(c, next) {
    await next();
    deps.metrics.requests.inc({
      route: routeLabel(c.req.path),
      status: c.res.status,
      dialect: dialectOfPath(c.req.path),
    });
  });
  // CORS_ORIGINS: which web pages may call the API from a browser.
  const corsHeaders = cors({
    origin: deps.config.corsOrigins.includes("*") ? "*" : deps.config.corsOrigins,
    exposeHeaders: [
      "x-request-id",
      "retry-after",
      "x-ratelimit-limit-tokens",
      "x-ratelimit-remaining-tokens",
      "x-ratelimit-reset-tokens",
      "anthropic-ratelimit-tokens-limit",
      "anthropic-ratelimit-tokens-remaining",
      "anthropic-ratelimit-tokens-reset",
    ],
  });
  // Browsers send Origin; SDKs and agents do not, and skip this work. Never
  // for /admin: its cookie session must not be usable from another origin.
  app.use("*", async function corsForBrowsers(c, next) {
    if (c.req.raw.headers.has("origin") && !isAdminPath(c.req.path)) return corsHeaders(c, next);
    await next();
  });

  app.get("/health", health);
  app.get("/metrics", metricsHandler(deps.metrics, deps.config.metricsToken));
  app.get(
    "/health/ready",
    readyHandler({
      ...deps,
      unknownKeysDuringOutage: deps.config.unknownKeysDuringOutage,
      upstreamConfigured: Boolean(deps.config.upstreamApiKey),
    }),
  );
  app.get(
    "/stats",
    statsHandler({ ...deps, defaultModel: deps.config.defaultModel, models: deps.config.models }),
  );
  app.get(
    "/stats/usage",
    statsUsageHandler({
      ...deps,
      retentionMs: deps.config.usageRetentionDays * 86_400_000,
      models: deps.config.models,
    }),
  );
  app.use("/v1/*", idleExemption(deps.config.idleTimeoutSeconds));
  // A proxied request, step by step: its target, its key, then the route.
  app.all("/v1/*", proxyTarget(deps.config, deps.metrics), requireKey(deps), proxyHandler(deps));
  // The admin API exists only with ADMIN_API_KEY; without it /admin/* is an
  // unknown route, and its code (OpenAPI schemas, sessions, key operations)
  // is not even loaded: a gateway without it does not carry it in memory.
  // Loaded synchronously so that building the app stays synchronous.
  if (deps.config.adminApiKey) {
    const { adminRoutes } = import.meta.require("./http/admin/routes.ts") as typeof AdminRoutes;
    app.route("/", adminRoutes({ ...deps, adminKey: deps.config.adminApiKey }));
  }
  app.route("/", webRoutes({ adminEnabled: Boolean(deps.config.adminApiKey) }));

  app.notFound((c) =>
    errorResponse(
      dialectOfPath(c.req.path),
      new GatewayError("not_found", `no route for ${c.req.method} ${c.req.path}`),
    ),
  );

  // Expected failures carry a code; anything else is our bug: log it, answer
  // 500 in the route's dialect, never a stack trace.
  app.onError((err, c) => {
    const dialect = dialectOfPath(c.req.path);
    if (err instanceof GatewayError) {
      c.get("access").fields.error = err.code;
      return errorResponse(dialect, err);
    }
    c.get("access").error({ err }, "unhandled error");
    return errorResponse(dialect, new GatewayError("internal_error", "internal error"));
  });

  return app;
}
