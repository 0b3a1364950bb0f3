import { Hono } from "hono";
import { cors } from "hono/cors";
import { getPath } from "hono/utils/url";
import type { UsageLedger } from "./accounting/ledger.ts";
import type { Config } from "./config.ts";
import { errorResponse, GatewayError } from "./errors.ts";
import { type AccessLogEnv, accessLog } from "./http/access-log.ts";
import type * as AdminRoutes from "./http/admin/routes.ts";
import { renderError } from "./http/errors.ts";
import { health } from "./http/health-route.ts";
import { metricsHandler } from "./http/metrics-route.ts";
import { isProxyPath, proxyEntry } from "./http/proxy/entry.ts";
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
  const proxy = proxyEntry(deps);

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
  // A browser's proxied call: the same CORS headers, around the call itself.
  const browsers = new Hono<{ Bindings: { inner: () => Promise<Response> } }>();
  browsers.use("*", corsHeaders);
  browsers.all("*", (c) => c.env.inner());

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
    statsHandler({
      ...deps,
      defaultModel: deps.config.defaultModel,
      models: deps.config.models,
    }),
  );
  app.get(
    "/stats/usage",
    statsUsageHandler({
      ...deps,
      retentionMs: deps.config.usageRetentionDays * 86_400_000,
      models: deps.config.models,
    }),
  );
  // The admin API exists only with ADMIN_API_KEY; without it /admin/* is an
  // unknown route, and its code (OpenAPI schemas, sessions, key operations)
  // is not even loaded: a gateway without it does not carry it in memory.
  // Loaded synchronously so that building the app stays synchronous.
  if (deps.config.adminApiKey) {
    const { adminRoutes } = require("./http/admin/routes.ts") as typeof AdminRoutes;
    app.route("/", adminRoutes({ ...deps, adminKey: deps.config.adminApiKey }));
  }
  app.route("/", webRoutes({ adminEnabled: Boolean(deps.config.adminApiKey) }));

  app.notFound((c) =>
    errorResponse(
      dialectOfPath(c.req.path),
      new GatewayError("not_found", `no route for ${c.req.method} ${c.req.path}`),
    ),
  );

  // In the route's dialect, never a stack trace (http/errors.ts).
  app.onError((err, c) => renderError(err, dialectOfPath(c.req.path), c.get("access")));

  // Proxied calls (/v1/*) do not go through the routes above: http/proxy/
  // entry.ts takes them from arrival to answer, with their own log line and
  // count. A browser's call (it sends Origin) gets the same CORS headers as
  // every other route.
  const routes = app.fetch;
  app.fetch = (req, server, ctx) => {
    const path = getPath(req);
    if (!isProxyPath(path)) return routes(req, server, ctx);
    if (!req.headers.has("origin")) return proxy(req, server, path);
    return proxy(req, server, path, (inner) => browsers.fetch(req, { inner }));
  };
  return app;
}
