import type { ChargeHandle } from "../../accounting/charge.ts";
import type { Dialect } from "../../errors.ts";
import { filterModelList } from "../../keys/allowed-models.ts";
import type { Metrics } from "../../metrics/registry.ts";
import { NO_TOKENS, type TokenUsage, totalTokens } from "../../models/token-usage.ts";
import {
  type MeteredStreamOptions,
  meteredStream,
  type StreamOutcome,
} from "../../proxy/metered-stream.ts";
import { readWhole } from "../../proxy/read-whole.ts";
import { responseUsage } from "../../proxy/usage.ts";
import { quotaHeaders } from "../../quota/headers.ts";
import { afterCharge, type WindowState } from "../../quota/window.ts";
import type { AccessLog } from "../access-log.ts";

// The last step of a proxied request: the upstream's answer passed on, its
// usage read as it goes by and charged once, with its metrics and log line.

export interface Answering {
  dialect: Dialect;
  access: AccessLog;
  metrics: Metrics;
  bill: ChargeHandle;
  /** The key's binding window when it was admitted, for the quota headers. */
  state: WindowState;
  now: number;
  /** performance.now() when the request went upstream. */
  sentAt: number;
  /** Aborts the upstream call (a body silent for too long). */
  abort: AbortController;
  /** Longest silence from the upstream's body. */
  idleMs: number;
}

export interface StreamTerms {
  hideUsageChunk: boolean;
  drainMs: number;
  requestBytes: number;
  /** Puts the connection's idle timeout back once the client's side is over. */
  onEnd?: () => void;
  /** The request is over, charged or not: its reservation and slot go. */
  release: () => void;
}

/** A streamed answer: passed on as it arrives, charged when its usage is known. */
export function streamAnswer(
  a: Answering,
  upstream: ReadableStream<Uint8Array>,
  status: number,
  headers: Headers,
  terms: StreamTerms,
): Response {
  const { dialect, access, metrics, bill } = a;
  for (const [k, v] of Object.entries(quotaHeaders(dialect, a.state, a.now))) headers.set(k, v);
  const writeLog = access.defer();
  const stream = meteredStream({
    upstream,
    dialect,
    hideUsageChunk: terms.hideUsageChunk,
    drainMs: terms.drainMs,
    idleMs: a.idleMs,
    onForceable: (force) => bill.forceWith(force),
    onIdle: () => a.abort.abort(),
    onEnd: terms.onEnd,
    requestBytes: terms.requestBytes,
    onDone: settleStream(bill, terms.release, metrics, access, writeLog, dialect, a.sentAt),
  });
  return new Response(stream, { status, headers });
}

/**
 * A stream's settlement: its charge, then its release, metrics and log line.
 * Made out here, over only what it needs: shutdown holds it from the
 * long-lived ledger (see `StreamCost` in proxy/metered-stream.ts), and a
 * closure made inside `streamAnswer` would hold all that holds, the upstream
 * call's abort controller included.
 */
function settleStream(
  bill: ChargeHandle,
  release: () => void,
  metrics: Metrics,
  access: AccessLog,
  writeLog: () => void,
  dialect: Dialect,
  sentAt: number,
): MeteredStreamOptions["onDone"] {
  return (outcome, usage) => {
    try {
      bill.charge(usage);
    } catch (err) {
      // The journal could not be written (disk full): say so loudly; the
      // stream itself is over and must not take the process down.
      access.error(
        { err: (err as Error).message, tokens: outcome.tokens },
        "could not record usage",
      );
    } finally {
      release();
    }
    metrics.upstreamDuration.observe(
      { dialect, stream: "true" },
      (performance.now() - sentAt) / 1000,
    );
    metrics.tokens.inc({ dialect }, outcome.tokens);
    noteStream(outcome, dialect, access, metrics);
    writeLog();
  };
}

function noteStream(outcome: StreamOutcome, dialect: Dialect, access: AccessLog, metrics: Metrics) {
  access.fields.tokens = outcome.tokens;
  access.fields.stream = true;
  if (!outcome.estimated) return;
  const reason = outcome.abandoned ? "abandoned" : outcome.broken ? "broken" : "no_usage";
  metrics.estimatedStreams.inc({ dialect, reason });
  access.fields.estimated = true;
  if (outcome.abandoned) access.fields.abandoned = true;
  if (outcome.broken) access.fields.broken = true;
}

/**
 * A whole answer: read, charged what it reports, passed on unchanged (but
 * for the model list, which shows a key only the models it may use).
 */
export async function wholeAnswer(
  a: Answering,
  upstream: Response,
  preread: Uint8Array | undefined,
  headers: Headers,
  allowedModels: readonly string[] | null,
): Promise<Response> {
  const { dialect, metrics, bill } = a;
  let bytes = preread ?? (await readWhole(upstream, a.idleMs, a.abort));
  if (allowedModels !== null && upstream.ok) {
    bytes = filterModelList(bytes, allowedModels);
    headers.delete("content-length");
  }
  const usage = usageOf(dialect, headers.get("content-type"), bytes);
  const tokens = totalTokens(usage);
  bill.charge(usage);
  metrics.upstreamDuration.observe(
    { dialect, stream: "false" },
    (performance.now() - a.sentAt) / 1000,
  );
  metrics.tokens.inc({ dialect }, tokens);
  a.access.fields.tokens = tokens;
  const after = quotaHeaders(dialect, afterCharge(a.state, bill.units, a.now), a.now);
  for (const [k, v] of Object.entries(after)) headers.set(k, v);
  return new Response(bytes, { status: upstream.status, headers });
}

const decoder = new TextDecoder();

function usageOf(dialect: Dialect, type: string | null, bytes: Uint8Array): TokenUsage {
  if (!type?.includes("json") || bytes.byteLength === 0) return NO_TOKENS;
  try {
    return responseUsage(dialect, JSON.parse(decoder.decode(bytes))) ?? NO_TOKENS;
  } catch {
    return NO_TOKENS;
  }
}
