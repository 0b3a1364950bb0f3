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

/** One request's log line, as it is being filled in. */
export class RequestLog implements AccessLog {
  readonly requestId: string;
  readonly fields: Record<string, unknown> = {};
  /** The response, once there is one (a deferred line reports its status). */
  private status = 0;
  private deferred = false;
  /** A deferred line's stream is over (it may end before the response is even handed back). */
  private ended = false;
  private readonly started = performance.now();

  constructor(
    private readonly log: Logger,
    private readonly method: string,
    private readonly path: string,
    incomingId: string | null,
  ) {
    this.requestId = incomingId && ID_PATTERN.test(incomingId) ? incomingId : crypto.randomUUID();
  }

  error(obj: Record<string, unknown>, msg: string): void {
    this.log.error({ reqId: this.requestId, ...obj }, msg);
  }

  defer(): () => void {
    this.deferred = true;
    return () => {
      this.ended = true;
      if (this.status !== 0) this.write();
    };
  }

  /**
   * The response is ready: it carries the request id, and the line is
   * written, unless it waits for the end of its stream.
   */
  answered(res: Response): void {
    res.headers.set("x-request-id", this.requestId);
    this.status = res.status;
    if (!this.deferred || this.ended) this.write();
  }

  private write(): void {
    if (!this.log.isLevelEnabled("info")) return;
    const f = this.fields;
    f.reqId = this.requestId;
    f.method = this.method;
    f.path = this.path;
    f.status = this.status;
    f.ms = Math.round((performance.now() - this.started) * 10) / 10;
    this.log.info(f, "request");
  }
}

/**
 * One structured line per request, carrying a request id that is also sent
 * back as `x-request-id` (a well-formed incoming one is kept, so ids can be
 * followed across proxies). Built once per request, without a child logger.
 * Proxied calls keep their own (http/proxy/entry.ts) without this middleware.
 */
export function accessLog(log: Logger): MiddlewareHandler<AccessLogEnv> {
  return async function accessLogMiddleware(c, next) {
    const access = new RequestLog(
      log,
      c.req.method,
      c.req.path,
      c.req.raw.headers.get("x-request-id"),
    );
    c.set("access", access);
    try {
      await next();
    } finally {
      access.answered(c.res);
    }
  };
}
