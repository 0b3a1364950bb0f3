/** What Bun hands a handler beside the request: the server, which sets per-request idle timeouts. */
export interface IdleControl {
  timeout(request: Request, seconds: number): void;
}

export function idleControl(env: unknown): IdleControl | undefined {
  const s = env as Partial<IdleControl> | undefined;
  return typeof s?.timeout === "function" ? (s as IdleControl) : undefined;
}

/**
 * The server closes connections idle for IDLE_TIMEOUT_SECONDS, but a proxied
 * call is quiet while the upstream thinks (minutes, for an LLM), in a stream
 * or before a whole answer: its own bounds are UPSTREAM_TIMEOUT_MS,
 * UPSTREAM_IDLE_TIMEOUT_MS and, for the request body, BODY_TIMEOUT_MS. So the
 * idle timeout is lifted for the request and put back once the answer (a
 * stream: its last byte) is out, for the keep-alive time that follows.
 */
export class IdleExemption {
  private restored = false;
  private deferred = false;

  private constructor(
    private readonly server: IdleControl,
    private readonly req: Request,
    private readonly seconds: number,
  ) {
    server.timeout(req, 0);
  }

  /** Lifts the request's idle timeout; null when there is none to lift (no server, or none set). */
  static lift(
    server: IdleControl | undefined,
    req: Request,
    seconds: number,
  ): IdleExemption | null {
    return server && seconds > 0 ? new IdleExemption(server, req, seconds) : null;
  }

  /**
   * A streamed answer puts the idle timeout back itself, when its last byte
   * is out (or the client left): call the function returned then.
   */
  defer(): () => void {
    this.deferred = true;
    return () => this.restore();
  }

  /** The answer is ready: the timeout goes back, unless a stream took that on. */
  answered(): void {
    if (!this.deferred) this.restore();
  }

  private restore(): void {
    if (this.restored) return;
    this.restored = true;
    this.server.timeout(this.req, this.seconds);
  }
}
