import type { MiddlewareHandler } from "hono";

/** What Hono hands a Bun handler as `c.env`: the server, which sets per-request idle timeouts. */
interface IdleControl {
  timeout(request: Request, seconds: number): void;
}

function idleControl(env: unknown): IdleControl | undefined {
  const s = env as Partial<IdleControl> | undefined;
  return typeof s?.timeout === "function" ? (s as IdleControl) : undefined;
}

export interface IdleExemption {
  /**
   * A streamed answer puts the idle timeout back itself, when its last byte
   * is out (or the client left): call the function returned then. Cheaper
   * than wrapping every stream in another one just to see it end.
   */
  defer(): () => void;
}

/** Set on requests whose idle timeout was lifted; absent when there is none to lift. */
export type IdleEnv = { Variables: { idle?: IdleExemption } };

/**
 * The server closes connections idle for IDLE_TIMEOUT_SECONDS, but a proxied
 * call is quiet while the upstream thinks (minutes, for an LLM), in a stream
 * or before a whole answer: its own bounds are UPSTREAM_TIMEOUT_MS,
 * UPSTREAM_IDLE_TIMEOUT_MS and, for the request body, BODY_TIMEOUT_MS. So the
 * idle timeout is lifted for the request and put back once the answer (a
 * stream: its last byte) is out, for the keep-alive time that follows.
 */
export function idleExemption(idleSeconds: number): MiddlewareHandler<IdleEnv> {
  return async function liftIdleTimeout(c, next) {
    const server = idleControl(c.env);
    if (!server || idleSeconds === 0) return next();
    const req = c.req.raw;
    server.timeout(req, 0);
    let restored = false;
    const restore = () => {
      if (restored) return;
      restored = true;
      server.timeout(req, idleSeconds);
    };
    let deferred = false;
    c.set("idle", {
      defer: () => {
        deferred = true;
        return restore;
      },
    });
    try {
      await next();
    } catch (err) {
      restore();
      throw err;
    }
    if (deferred) return;
    const res = c.res;
    if (!res.body || !(res.headers.get("content-type") ?? "").includes("text/event-stream")) {
      restore();
      return;
    }
    // A stream whose producer did not take the restore on itself.
    const body = res.body.pipeThrough(new TransformStream({ flush: restore }));
    c.res = new Response(body, res);
  };
}
