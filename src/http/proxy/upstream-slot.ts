import { type Dialect, GatewayError } from "../../errors.ts";
import type { Metrics } from "../../metrics/registry.ts";
import { FairQueue, type Slot } from "../../quota/fair-queue.ts";
import type { AccessLog } from "../access-log.ts";

/** Retry-After for a request that found every upstream slot taken: slots turn over quickly. */
const BUSY_RETRY_AFTER_SECONDS = "1";

/** The fair queue for UPSTREAM_MAX_CONCURRENCY, reporting its depth; null when there is no limit. */
export function upstreamQueue(
  limit: number | null,
  timeoutMs: number,
  metrics: Metrics,
): FairQueue | null {
  if (limit === null) return null;
  return new FairQueue({
    limit,
    timeoutMs,
    onDepth: (depth) => metrics.upstreamQueueDepth.set(depth),
  });
}

/**
 * Waits for an upstream slot for the key's request. A wait that times out
 * becomes a 429 with a short Retry-After; a client that leaves while
 * waiting just ends (nothing was sent upstream, nothing is charged).
 */
export async function upstreamSlot(
  queue: FairQueue,
  keyId: string,
  signal: AbortSignal,
  dialect: Dialect,
  access: AccessLog,
  metrics: Metrics,
  timeoutMs: number,
): Promise<Slot> {
  const got = await queue.acquire(keyId, signal);
  const waitedMs = got.ok ? got.slot.waitedMs : got.waitedMs;
  if (waitedMs > 0) access.fields.queued_ms = waitedMs;
  metrics.upstreamQueueWait.observe({ outcome: got.ok ? "admitted" : got.reason }, waitedMs / 1000);
  if (got.ok) return got.slot;
  access.fields.queue = got.reason;
  if (got.reason === "timeout") metrics.upstreamQueueTimeouts.inc({ dialect });
  throw new GatewayError(
    "upstream_busy",
    got.reason === "timeout"
      ? `the shared upstream is busy: every upstream slot stayed taken for ${timeoutMs} ms; retry shortly (this is not the key's quota)`
      : "the client left while waiting for an upstream slot",
    { "retry-after": BUSY_RETRY_AFTER_SECONDS },
  );
}
