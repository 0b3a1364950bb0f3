import { createRoute, type OpenAPIHono } from "@hono/zod-openapi";
import type { MiddlewareHandler } from "hono";
import { auditPage, auditQuery, listAudit } from "../../admin/audit.ts";
import type { AdminDeps } from "../../admin/operations.ts";
import type { AdminEnv } from "./auth.ts";
import { errorResponses, json, security } from "./responses.ts";

export function auditRoutes(
  app: OpenAPIHono<AdminEnv>,
  deps: AdminDeps,
  guard: MiddlewareHandler<AdminEnv>,
): void {
  app.openapi(
    createRoute({
      tags: ["audit"],
      security,
      middleware: guard,
      method: "get",
      path: "/audit",
      summary: "The audit log, newest first: who changed which key or data, when, and how",
      description:
        "Append-only; entries never hold a secret or hash. Kept for AUDIT_RETENTION_DAYS (default: for ever).",
      request: { query: auditQuery },
      responses: { 200: json(auditPage, "One page of entries"), ...errorResponses },
    }),
    async (c) => c.json(await listAudit(deps, c.req.valid("query")), 200),
  );
}
