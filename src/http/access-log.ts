import type { MiddlewareHandler } from "hono";
import type { Logger } from "../log.ts";

export interface AccessLog {
  requestId: string;
  /** Fields for the request's one log line (key prefix, model, tokens…). */
  fields: Record<string, unknown>;
  /** Logs an extra line about this request (errors), carrying its request id. */
  error(obj: Record<string, unknown>, msg: string): void;
  /** A streamed response writes its line when the stream ends, not when it starts. */
  defer(): () => void;
}

export type AccessLogEnv = { Variables: { access: AccessLog } };

const ID_PATTERN = /^[\w.:-]{1,128}$/;

/**
 * One structured line per request, carrying a request id that is also sent
 * back as `x-request-id` (a well-formed incoming one is kept, so ids can be
 * followed across proxies). Built once per request, without a child logger:
 * this runs on every proxied call.
 */
export function accessLog(log: Logger): MiddlewareHandler<AccessLogEnv> {
  return async function accessLogMiddleware(c, next) {
    const started = performance.now();
    const incoming = c.req.raw.headers.get("x-request-id");
    const requestId = incoming && ID_PATTERN.test(incoming) ? incoming : crypto.randomUUID();
    let deferred = false;
    const fields: Record<string, unknown> = {};
    const write = (status: number) => {
      if (!log.isLevelEnabled("info")) return;
      fields.reqId = requestId;
      fields.method = c.req.method;
      fields.path = c.req.path;
      fields.status = status;
      fields.ms = Math.round((performance.now() - started) * 10) / 10;
      log.info(fields, "request");
    };
    c.set("access", {
      requestId,
      fields,
      error: (obj, msg) => log.error({ reqId: requestId, ...obj }, msg),
      defer: () => {
        deferred = true;
        return () => write(c.res.status);
      },
    });
    try {
      await next();
    } finally {
      c.res.headers.set("x-request-id", requestId);
      if (!deferred) write(c.res.status);
    }
  };
}
