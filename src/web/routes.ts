import { type Context, Hono } from "hono";
import { type Asset, loadAsset, matchesEtag } from "./assets.ts";
import { PAGE_SECURITY_HEADERS } from "./security-headers.ts";

export interface WebOptions {
  /** The operator dashboard is served only when the admin API is on. */
  adminEnabled: boolean;
}

/** Modules and styles both pages load. */
const SHARED = ["style.css", "dom.js", "format.js", "chart.js"];
const USAGE_PAGE = ["usage.js"];
const DASHBOARD_PAGE = [
  "dashboard.js",
  "admin-api.js",
  "keys-table.js",
  "key-dialogs.js",
  "key-detail.js",
  "totals.js",
  "activity.js",
  "models.js",
];

/**
 * The operator dashboard (`/dashboard`) and the key holder's page (`/usage`),
 * with their scripts and styles under `/web/`. Files are read once, here, and
 * served from memory. File names carry no version, so every response is
 * `no-cache` with an ETag: the browser revalidates (a 304 on loopback costs
 * nothing) and never runs a script from an older release beside a newer one.
 */
export function webRoutes(options: WebOptions): Hono {
  const app = new Hono();
  const assets = new Map<string, Asset>();
  const names = options.adminEnabled
    ? [...SHARED, ...USAGE_PAGE, ...DASHBOARD_PAGE]
    : [...SHARED, ...USAGE_PAGE];
  for (const name of names) assets.set(name, loadAsset(name));

  const usagePage = loadAsset("usage.html");
  // Someone who opens the gateway's address in a browser wants a page, not a 404.
  app.get("/", (c) => c.redirect("/usage", 302));
  app.get("/usage", (c) => serve(c, usagePage, PAGE_SECURITY_HEADERS));
  if (options.adminEnabled) {
    const dashboardPage = loadAsset("dashboard.html");
    app.get("/dashboard", (c) => serve(c, dashboardPage, PAGE_SECURITY_HEADERS));
  }
  app.get("/web/:file", async function webAsset(c, next) {
    const asset = assets.get(c.req.param("file"));
    // Unknown names fall through to the app's own 404.
    if (asset === undefined) return next();
    return serve(c, asset, { "x-content-type-options": "nosniff" });
  });
  return app;
}

function serve(c: Context, asset: Asset, extra: Readonly<Record<string, string>>): Response {
  const headers: Record<string, string> = {
    ...extra,
    etag: asset.etag,
    "cache-control": "no-cache",
  };
  if (matchesEtag(c.req.header("if-none-match"), asset.etag)) {
    return new Response(null, { status: 304, headers });
  }
  headers["content-type"] = asset.contentType;
  // Hono answers HEAD with this GET handler and drops the body itself.
  return new Response(asset.body, { status: 200, headers });
}
