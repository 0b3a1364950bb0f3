import type { Config } from "../../config.ts";
import { type Dialect, GatewayError } from "../../errors.ts";
import type { Metrics } from "../../metrics/registry.ts";
import { checkPath, dialectOfPath, type Endpoint } from "../../proxy/endpoints.ts";

/** Where a proxied request goes: the endpoint it was checked against. */
export interface ProxyTarget {
  dialect: Dialect;
  /** The canonical path, as forwarded. */
  path: string;
  url: URL;
  /** The known endpoint, or null for one of EXTRA_PATHS. */
  endpoint: Endpoint | null;
}

/**
 * First step of every /v1/* request: only endpoints the gateway meters (or
 * the operator added in EXTRA_PATHS) go upstream; anything else is refused
 * before the key is even looked at.
 */
export function proxyTarget(config: Config, metrics: Metrics): (req: Request) => ProxyTarget {
  const extraPaths = new Set(config.extraPaths);
  return function checkTarget(req) {
    const url = new URL(req.url);
    const checked = checkPath(req.method, url.pathname, extraPaths);
    if (!checked.ok) {
      const malformed = checked.reason === "malformed";
      metrics.blockedPaths.inc({ reason: malformed ? "malformed" : "not_found" });
      throw new GatewayError(malformed ? "invalid_request" : "not_found", checked.message);
    }
    return {
      dialect: dialectOfPath(url.pathname),
      path: checked.path,
      url,
      endpoint: checked.endpoint,
    };
  };
}
