import { GatewayError } from "../errors.ts";
import { describeFetchFailure } from "./fetch-failure.ts";

export interface ForwardRequest {
  method: string;
  url: string;
  headers: Headers;
  body: string | Uint8Array | null;
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
      body: req.body,
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
