import { GatewayError } from "../errors.ts";

/**
 * Reads a whole upstream answer; a body silent for `limitMs` aborts the call
 * (504), one that breaks off is a 502.
 */
export async function readWhole(
  upstream: Response,
  limitMs: number,
  abort: AbortController,
): Promise<Uint8Array> {
  const whole = upstream.bytes();
  // A short answer is usually all there already: no timer for it.
  if (Bun.peek.status(whole) === "fulfilled") return Bun.peek(whole) as Uint8Array;
  let silent = false;
  const timer = setTimeout(() => {
    silent = true;
    abort.abort();
  }, limitMs);
  try {
    return await whole;
  } catch (err) {
    if (silent) {
      throw new GatewayError(
        "upstream_timeout",
        `upstream stopped sending its answer for ${limitMs} ms`,
      );
    }
    const reason = err instanceof Error ? err.message : String(err);
    throw new GatewayError("upstream_unreachable", `upstream response broke off: ${reason}`);
  } finally {
    clearTimeout(timer);
  }
}
