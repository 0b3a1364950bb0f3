import type { Context } from "hono";

/** Liveness: answers as long as the process serves HTTP; touches nothing else. */
export function health(c: Context): Response {
  return c.json({ status: "ok", timestamp: new Date().toISOString() });
}
