import { createHash, timingSafeEqual } from "node:crypto";
import type { Context } from "hono";
import type { Metrics } from "../metrics/registry.ts";

const digest = (s: string) => createHash("sha256").update(s).digest();

/**
 * Prometheus text. With METRICS_TOKEN set, a scrape must present it as a
 * bearer token; it is compared in constant time (as digests, so its length
 * does not show either).
 */
export function metricsHandler(metrics: Metrics, token: string | undefined) {
  const expected = token === undefined ? undefined : digest(token);
  return async function metricsRoute(c: Context): Promise<Response> {
    if (expected) {
      const m = /^bearer\s+(.+)$/i.exec(c.req.header("authorization") ?? "");
      if (!m?.[1] || !timingSafeEqual(digest(m[1].trim()), expected)) {
        return c.json(
          {
            error: {
              message: "metrics need 'Authorization: Bearer <METRICS_TOKEN>'",
              code: "unauthorized",
            },
          },
          401,
        );
      }
    }
    return c.body(await metrics.registry.metrics(), 200, {
      "content-type": metrics.registry.contentType,
      "cache-control": "no-store",
    });
  };
}
