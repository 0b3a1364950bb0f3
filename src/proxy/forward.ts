import { GatewayError } from "../errors.ts";
import { describeFetchFailure } from "./fetch-failure.ts";
import { SplicedBody } from "./spliced-body.ts";

/** A request body as it goes upstream: text, bytes, or pieces put together as it is sent. */
export type UpstreamBody = string | Uint8Array | SplicedBody | null;

export interface ForwardRequest {
  method: string;
  url: string;
  headers: Headers;
  body: UpstreamBody;
  /** Time allowed to the upstream's response headers. */
  timeoutMs: number;
  /**
   * Aborts the upstream call, body included (its owner aborts it when the
   * body goes silent for too long; forward aborts it when the headers are
   * late). One controller per call: linking a second one to it cost a
   * measurable share of a request.
   */
  abort?: AbortController;
}

/**
 * Sends a request upstream. Never tied to the client's connection: a client
 * that goes away must not cancel a request that is still being paid for.
 */
export async function forward(req: ForwardRequest): Promise<Response> {
  const controller = req.abort ?? new AbortController();
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    controller.abort();
  }, req.timeoutMs);
  try {
    return await fetch(req.url, {
      method: req.method,
      headers: req.headers,
      // Lent in the same step as the call, which copies it (spliced-body.ts).
      body: req.body instanceof SplicedBody ? req.body.lend() : req.body,
      signal: controller.signal,
      redirect: "manual",
      // Bun's own socket idle limit (5 min) would cut a model thinking for
      // longer; silences are bounded by our timers instead.
      timeout: false,
    });
  } catch (err) {
    if (timedOut) {
      throw new GatewayError(
        "upstream_timeout",
        `upstream did not answer within ${req.timeoutMs} ms`,
      );
    }
    throw new GatewayError("upstream_unreachable", describeFetchFailure(req.url, err));
  } finally {
    clearTimeout(timer);
  }
}
