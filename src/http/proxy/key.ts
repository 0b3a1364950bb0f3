import type { MiddlewareHandler } from "hono";
import { TrustedProxies } from "../../admin/client-address.ts";
import type { Config } from "../../config.ts";
import type { KeyCache } from "../../keys/cache.ts";
import type { Metrics } from "../../metrics/registry.ts";
import { requestSource } from "../admin/address.ts";
import { authenticate } from "../authenticate.ts";
import { defaultFailedKeyLimits, FailedKeyLimiter } from "../failed-keys.ts";
import type { ProxyEnv } from "./target.ts";

export interface KeyStepDeps {
  config: Config;
  keys: KeyCache;
  metrics: Metrics;
  clock: () => number;
}

/**
 * Second step of every /v1/* request: the caller's key, active and unexpired,
 * or the 401/403 that says why not. Failed attempts are counted and limited
 * per client address; a key this instance knows is never held up by them.
 */
export function requireKey(deps: KeyStepDeps): MiddlewareHandler<ProxyEnv> {
  const proxies = new TrustedProxies(deps.config.trustedProxies);
  const failedKeys = new FailedKeyLimiter(defaultFailedKeyLimits, (reason) =>
    deps.metrics.keyAuthFailures.inc({ reason }),
  );
  return async function checkKey(c, next) {
    const key = await authenticate(deps.keys, c.req.raw, c.get("target").url, deps.clock(), {
      failures: { limiter: failedKeys, address: () => requestSource(c, proxies).limiterKey },
    });
    c.get("access").fields.key = key.keyPrefix;
    c.set("key", key);
    await next();
  };
}
