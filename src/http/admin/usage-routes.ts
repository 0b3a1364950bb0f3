import { createRoute, type OpenAPIHono } from "@hono/zod-openapi";
import type { MiddlewareHandler } from "hono";
import type { AdminDeps } from "../../admin/operations.ts";
import { keyIdParam, keyUsageSeries, usageQuery, usageTotals } from "../../admin/schemas.ts";
import { keyUsage, usageTotals as totals } from "../../admin/usage.ts";
import type { AdminEnv } from "./auth.ts";
import { errorResponses, json, notFoundResponse, security } from "./responses.ts";

const rangeHelp =
  "from/to are floored to the step; without `to` the range ends with the step holding now; " +
  "without `from` it starts 24 hours before `to`; at most 2000 points.";

export function usageRoutes(
  app: OpenAPIHono<AdminEnv>,
  deps: AdminDeps,
  guard: MiddlewareHandler<AdminEnv>,
): void {
  const common = { tags: ["usage"], security, middleware: guard };

  app.openapi(
    createRoute({
      ...common,
      method: "get",
      path: "/keys/{id}/usage",
      summary: "One key's usage history, per step",
      description: rangeHelp,
      request: { params: keyIdParam, query: usageQuery },
      responses: {
        200: json(keyUsageSeries, "Usage per step"),
        ...notFoundResponse,
        ...errorResponses,
      },
    }),
    async (c) => c.json(await keyUsage(deps, c.req.valid("param").id, c.req.valid("query")), 200),
  );

  app.openapi(
    createRoute({
      ...common,
      method: "get",
      path: "/usage",
      summary: "Usage across all keys, per step, with the top 50 keys",
      description: rangeHelp,
      request: { query: usageQuery },
      responses: { 200: json(usageTotals, "Totals"), ...errorResponses },
    }),
    async (c) => c.json(await totals(deps, c.req.valid("query")), 200),
  );
}
