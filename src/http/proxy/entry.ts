import type { UsageLedger } from "../../accounting/ledger.ts";
import type { Config } from "../../config.ts";
import type { KeyCache } from "../../keys/cache.ts";
import type { Logger } from "../../log.ts";
import type { Metrics } from "../../metrics/registry.ts";
import { routeLabel } from "../../metrics/routes.ts";
import { dialectOfPath } from "../../proxy/endpoints.ts";
import type { UsageView } from "../../quota/usage-view.ts";
import { RequestLog } from "../access-log.ts";
import { peerAddress } from "../admin/address.ts";
import { renderError } from "../errors.ts";
import { IdleExemption, idleControl } from "../idle-exemption.ts";
import { requireKey } from "./key.ts";
import { proxyHandler } from "./route.ts";
import { proxyTarget } from "./target.ts";

export interface ProxyEntryDeps {
  config: Config;
  keys: KeyCache;
  usage: UsageView;
  ledger: UsageLedger;
  metrics: Metrics;
  clock: () => number;
  log: Logger;
}

/** Runs the request's own steps; a browser's request is wrapped in its CORS headers. */
export type Wrap = (inner: () => Promise<Response>) => Response | Promise<Response>;

/** A proxied call's path (decoded, as routes see it): /v1 and everything under it. */
export function isProxyPath(path: string): boolean {
  return path === "/v1" || path.startsWith("/v1/");
}

/**
 * A proxied request (`/v1/*`), from its arrival to its answer, in order:
 * its log line and request id, the idle timeout lifted, then its target
 * (target.ts), its key (key.ts) and the route (route.ts), and its refusal
 * in the caller's dialect when a step says no; last, its request count. It
 * runs outside the web framework's middleware: this is the one path every
 * call of every key takes, and it is kept to the work it needs.
 */
export function proxyEntry(deps: ProxyEntryDeps) {
  const { config, log, metrics } = deps;
  const target = proxyTarget(config, metrics);
  const key = requireKey(deps);
  const route = proxyHandler(deps);

  return async function handle(
    req: Request,
    server: unknown,
    path: string,
    wrap?: Wrap,
  ): Promise<Response> {
    const access = new RequestLog(log, req.method, path, req.headers.get("x-request-id"));
    const dialect = dialectOfPath(path);
    let idle: IdleExemption | null = null;
    const steps = async () => {
      try {
        const to = target(req);
        const found = await key(req, to.url, () => peerAddress(server, req));
        access.fields.key = found.keyPrefix;
        return await route(req, to, found, access, idle);
      } catch (err) {
        return renderError(err, dialect, access);
      }
    };
    let res: Response;
    try {
      idle = IdleExemption.lift(idleControl(server), req, config.idleTimeoutSeconds);
      res = wrap ? await wrap(steps) : await steps();
    } catch (err) {
      res = renderError(err, dialect, access);
    }
    access.answered(res);
    idle?.answered();
    metrics.requests.inc({ route: routeLabel(path), status: res.status, dialect });
    return res;
  };
}
