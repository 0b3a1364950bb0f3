import { createRoute, type OpenAPIHono } from "@hono/zod-openapi";
import type { Context, MiddlewareHandler } from "hono";
import * as ops from "../../admin/operations.ts";
import {
  createKeyBody,
  issuedKeyObject,
  keyIdParam,
  keyList,
  keyObject,
  listKeysQuery,
  purgedKey,
  revokedKey,
  updateKeyBody,
} from "../../admin/schemas.ts";
import type { AuditActor } from "../../storage/types.ts";
import type { AdminEnv } from "./auth.ts";
import { conflictResponse, errorResponses, json, notFoundResponse, security } from "./responses.ts";

const tags = ["keys"];
const body = <T>(schema: T) => ({
  body: { content: { "application/json": { schema } }, required: true },
});

export function keyRoutes(
  app: OpenAPIHono<AdminEnv>,
  deps: ops.AdminDeps,
  guard: MiddlewareHandler<AdminEnv>,
  actorOf: (c: Context<AdminEnv>) => AuditActor,
): void {
  const common = { tags, security, middleware: guard };

  app.openapi(
    createRoute({
      ...common,
      method: "get",
      path: "/keys",
      summary: "List keys, newest first, with their usage in the current window",
      request: { query: listKeysQuery },
      responses: { 200: json(keyList, "One page of keys"), ...errorResponses },
    }),
    async (c) => c.json(await ops.listKeys(deps, c.req.valid("query")), 200),
  );

  app.openapi(
    createRoute({
      ...common,
      method: "post",
      path: "/keys",
      summary: "Create a key; the answer holds its secret, shown this once",
      request: body(createKeyBody),
      responses: { 201: json(issuedKeyObject, "The new key and its secret"), ...errorResponses },
    }),
    async (c) => {
      const b = c.req.valid("json");
      const created = await ops.createKey(
        deps,
        {
          name: b.name,
          tokenLimit: b.token_limit_per_5h,
          model: b.model ?? null,
          expiresAt: b.expires_at ?? null,
          maxConcurrent: b.max_concurrent ?? null,
          weeklyLimit: b.token_limit_per_week ?? null,
          allowedModels: b.allowed_models ?? null,
        },
        actorOf(c),
      );
      return c.json(created, 201);
    },
  );

  app.openapi(
    createRoute({
      ...common,
      method: "get",
      path: "/keys/{id}",
      summary: "One key",
      request: { params: keyIdParam },
      responses: { 200: json(keyObject, "The key"), ...notFoundResponse, ...errorResponses },
    }),
    async (c) => c.json(await ops.getKey(deps, c.req.valid("param").id), 200),
  );

  app.openapi(
    createRoute({
      ...common,
      method: "patch",
      path: "/keys/{id}",
      summary:
        "Change a key's name, limit, model, expiry, concurrency, weekly limit or state; applied at once",
      request: { params: keyIdParam, ...body(updateKeyBody) },
      responses: {
        200: json(keyObject, "The changed key"),
        ...notFoundResponse,
        ...conflictResponse("The key is revoked"),
        ...errorResponses,
      },
    }),
    async (c) => {
      const b = c.req.valid("json");
      const updated = await ops.updateKey(
        deps,
        c.req.valid("param").id,
        {
          name: b.name,
          tokenLimit: b.token_limit_per_5h,
          model: b.model,
          expiresAt: b.expires_at,
          maxConcurrent: b.max_concurrent,
          weeklyLimit: b.token_limit_per_week,
          allowedModels: b.allowed_models,
          disabled: b.disabled,
        },
        actorOf(c),
      );
      return c.json(updated, 200);
    },
  );

  app.openapi(
    createRoute({
      ...common,
      method: "post",
      path: "/keys/{id}/rotate",
      summary: "Issue a new secret; the old one stops working, usage and limits stay",
      request: { params: keyIdParam },
      responses: {
        200: json(issuedKeyObject, "The key and its new secret"),
        ...notFoundResponse,
        ...conflictResponse("The key is revoked"),
        ...errorResponses,
      },
    }),
    async (c) => c.json(await ops.rotateKey(deps, c.req.valid("param").id, actorOf(c)), 200),
  );

  app.openapi(
    createRoute({
      ...common,
      method: "delete",
      path: "/keys/{id}",
      summary:
        "Revoke a key: refused at once on every instance; its name, limits, totals and usage history stay",
      request: { params: keyIdParam },
      responses: { 200: json(revokedKey, "Revoked"), ...notFoundResponse, ...errorResponses },
    }),
    async (c) => c.json(await ops.revokeKey(deps, c.req.valid("param").id, actorOf(c)), 200),
  );

  app.openapi(
    createRoute({
      ...common,
      method: "post",
      path: "/keys/{id}/purge",
      summary:
        "Erase a revoked key and its usage for good (data-protection requests); the audit log keeps its id and prefix",
      request: { params: keyIdParam },
      responses: {
        200: json(purgedKey, "Purged"),
        ...notFoundResponse,
        ...conflictResponse("The key is not revoked"),
        ...errorResponses,
      },
    }),
    async (c) => c.json(await ops.purgeKey(deps, c.req.valid("param").id, actorOf(c)), 200),
  );
}
