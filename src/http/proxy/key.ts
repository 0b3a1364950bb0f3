import { TrustedProxies } from "../../admin/client-address.ts";
import type { Config } from "../../config.ts";
import type { KeyCache } from "../../keys/cache.ts";
import type { Metrics } from "../../metrics/registry.ts";
import type { KeyRecord } from "../../storage/types.ts";
import { requestSourceOf } from "../admin/address.ts";
import { authenticate } from "../authenticate.ts";
import { defaultFailedKeyLimits, FailedKeyLimiter } from "../failed-keys.ts";

export interface KeyStepDeps {
  config: Config;
  keys: KeyCache;
  metrics: Metrics;
  clock: () => number;
}

/** The request's key, with where it came from should the key turn out to be wrong. */
export type KeyStep = (req: Request, url: URL, peer: () => string) => Promise<KeyRecord>;

/**
 * Second step of every /v1/* request: the caller's key, active and unexpired,
 * or the 401/403 that says why not. Failed attempts are counted and limited
 * per client address; a key this instance knows is never held up by them.
 */
export function requireKey(deps: KeyStepDeps): KeyStep {
  const proxies = new TrustedProxies(deps.config.trustedProxies);
  const failedKeys = new FailedKeyLimiter(defaultFailedKeyLimits, (reason) =>
    deps.metrics.keyAuthFailures.inc({ reason }),
  );
  return function checkKey(req, url, peer) {
    return authenticate(deps.keys, req, url, deps.clock(), {
      failures: {
        limiter: failedKeys,
        address: () => requestSourceOf(req, peer(), proxies).limiterKey,
      },
    });
  };
}
