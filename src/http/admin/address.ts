import type { Context } from "hono";
import { getConnInfo } from "hono/bun";

/**
 * The socket's peer address. X-Forwarded-For is not trusted: anyone can send
 * it, and the failed-attempt limit keyed on it would be worthless. Behind a
 * reverse proxy every client shares the proxy's address (and its limit).
 * In-process tests (`app.request`) have no socket: "unknown".
 */
export function clientAddress(c: Context): string {
  try {
    return getConnInfo(c).remote.address ?? "unknown";
  } catch {
    return "unknown";
  }
}
