import type { Context } from "hono";
import type { UsageLedger } from "../accounting/ledger.ts";
import { TrustedProxies } from "../admin/client-address.ts";
import type { Config } from "../config.ts";
import { type Dialect, GatewayError } from "../errors.ts";
import type { KeyCache } from "../keys/cache.ts";
import type { Metrics } from "../metrics/registry.ts";
import { checkPath, deferredWork, dialectOfPath } from "../proxy/endpoints.ts";
import { forward } from "../proxy/forward.ts";
import { clientHeaders, type HeaderPolicy, upstreamHeaders } from "../proxy/header-policy.ts";
import { estimateTokens, meteredStream } from "../proxy/metered-stream.ts";
import { namesModel, prepareBody, upstreamUrl } from "../proxy/request.ts";
import { responseTokens } from "../proxy/usage.ts";
import { quotaExceededHeaders, quotaHeaders } from "../quota/headers.ts";
import type { UsageView } from "../quota/usage-view.ts";
import { afterCharge, WINDOW_MS, windowState } from "../quota/window.ts";
import type { KeyRecord } from "../storage/types.ts";
import type { AccessLogEnv } from "./access-log.ts";
import { requestSource } from "./admin/address.ts";
import { authenticate } from "./authenticate.ts";
import { parseJsonObject, readBody } from "./body.ts";
import { defaultFailedKeyLimits, FailedKeyLimiter } from "./failed-keys.ts";

export interface ProxyDeps {
  config: Config;
  metrics: Metrics;
  keys: KeyCache;
  usage: UsageView;
  ledger: UsageLedger;
  clock: () => number;
  /** Failed key authentications per client address (default: one per handler, counted in metrics). */
  failedKeys?: FailedKeyLimiter;
}

export const dialectOf = dialectOfPath;

const decoder = new TextDecoder();

/**
 * Every /v1/* request: key, quota, forward with the operator's key, answer
 * (streamed as it arrives), charge what the upstream reports.
 */
export function proxyHandler(deps: ProxyDeps) {
  const { config, ledger, metrics } = deps;
  const bases: Record<Dialect, string> = {
    openai: config.upstreamOpenaiUrl,
    anthropic: config.upstreamAnthropicUrl,
  };
  const extraPaths = new Set(config.extraPaths);
  const headerPolicy: HeaderPolicy = {
    extraRequestHeaders: new Set(config.extraRequestHeaders),
    anthropicBetas: config.allowedAnthropicBetas ? new Set(config.allowedAnthropicBetas) : null,
  };
  const proxies = new TrustedProxies(config.trustedProxies);
  const failedKeys =
    deps.failedKeys ??
    new FailedKeyLimiter(defaultFailedKeyLimits, (reason) =>
      metrics.keyAuthFailures.inc({ reason }),
    );

  return async function proxy(c: Context<AccessLogEnv>): Promise<Response> {
    const req = c.req.raw;
    const url = new URL(req.url);
    const dialect = dialectOfPath(url.pathname);
    const access = c.get("access");
    const now = deps.clock();
    // Only endpoints the gateway meters (or the operator added) go upstream.
    const endpoint = checkPath(req.method, url.pathname, extraPaths);
    if (!endpoint.ok) {
      metrics.blockedPaths.inc({
        reason: endpoint.reason === "malformed" ? "malformed" : "not_found",
      });
      throw new GatewayError(
        endpoint.reason === "malformed" ? "invalid_request" : "not_found",
        endpoint.message,
      );
    }
    const path = endpoint.path;

    const key = await authenticate(deps.keys, req, url, now, {
      failures: { limiter: failedKeys, address: requestSource(c, proxies).limiterKey },
    });
    access.fields.key = key.keyPrefix;
    if (!config.upstreamApiKey) {
      throw new GatewayError(
        "upstream_not_configured",
        "the gateway has no upstream key configured (UPSTREAM_API_KEY)",
      );
    }

    const { body, requestBytes, hideUsageChunk, model } = await requestBody(
      req,
      path,
      dialect,
      key,
      config,
    );
    if (model) access.fields.model = model;

    const state = windowState(await deps.usage.buckets(key.id), key.tokenLimit, now);
    if (!state.allowed) {
      access.fields.quota = "exceeded";
      metrics.quotaRejections.inc({ dialect });
      throw new GatewayError(
        "quota_exceeded",
        `token quota of ${key.tokenLimit} per 5 hours is used up (${state.used} used); it frees up gradually as usage ages out`,
        quotaExceededHeaders(dialect, state, now, WINDOW_MS),
      );
    }

    // From here the request may cost tokens. It is charged exactly once:
    // when its usage is known, or, if shutdown cannot wait that long, then
    // with what is known by that time (for a whole answer, an estimate).
    let charged = false;
    const charge = (tokens: number) => {
      if (charged) return false;
      charged = true;
      ledger.record(key.id, tokens);
      return true;
    };
    let forceStream: (() => void) | undefined;
    const release = ledger.hold(() => {
      if (forceStream) forceStream();
      else charge(estimateTokens(requestBytes, 0));
    });
    let streaming = false;
    try {
      const outHeaders = upstreamHeaders(req.headers, dialect, config.upstreamApiKey, headerPolicy);
      if (typeof body === "string") outHeaders.set("content-type", "application/json");
      const sentAt = performance.now();
      const abort = new AbortController();
      const upstream = await forward({
        method: req.method,
        url: upstreamUrl(
          dialect,
          bases[dialect],
          path,
          url.search,
          endpoint.endpoint ? "known" : "any",
        ),
        headers: outHeaders,
        body,
        timeoutMs: config.upstreamTimeoutMs,
        signal: abort.signal,
      }).catch((err: unknown) => {
        if (err instanceof GatewayError) metrics.upstreamErrors.inc({ dialect, reason: err.code });
        throw err;
      });
      metrics.upstreamTtfb.observe({ dialect }, (performance.now() - sentAt) / 1000);

      const headers = clientHeaders(upstream.headers, upstream.status);
      const isStream = (upstream.headers.get("content-type") ?? "").includes("text/event-stream");
      if (isStream && upstream.body && upstream.ok) {
        for (const [k, v] of Object.entries(quotaHeaders(dialect, state, now))) headers.set(k, v);
        const writeLog = access.defer();
        streaming = true;
        const stream = meteredStream({
          upstream: upstream.body,
          dialect,
          hideUsageChunk,
          drainMs: config.streamDrainMs,
          idleMs: config.upstreamIdleTimeoutMs,
          onForceable: (force) => {
            forceStream = force;
          },
          onIdle: () => abort.abort(),
          requestBytes,
          onDone: (outcome) => {
            try {
              charge(outcome.tokens);
            } catch (err) {
              // The journal could not be written (disk full): say so loudly;
              // the stream itself is over and must not take the process down.
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
            if (outcome.estimated) {
              const reason = outcome.abandoned
                ? "abandoned"
                : outcome.broken
                  ? "broken"
                  : "no_usage";
              metrics.estimatedStreams.inc({ dialect, reason });
            }
            Object.assign(access.fields, { tokens: outcome.tokens, stream: true });
            if (outcome.estimated) access.fields.estimated = true;
            if (outcome.abandoned) access.fields.abandoned = true;
            if (outcome.broken) access.fields.broken = true;
            writeLog();
          },
        });
        return new Response(stream, { status: upstream.status, headers });
      }

      // A whole response: read it, charge what it reports, pass it on unchanged.
      const bytes = await readWhole(upstream, config.upstreamIdleTimeoutMs, abort);
      const tokens = tokensOf(dialect, headers.get("content-type"), bytes) ?? 0;
      charge(tokens);
      metrics.upstreamDuration.observe(
        { dialect, stream: "false" },
        (performance.now() - sentAt) / 1000,
      );
      metrics.tokens.inc({ dialect }, tokens);
      access.fields.tokens = tokens;
      const after = quotaHeaders(dialect, afterCharge(state, tokens, now), now);
      for (const [k, v] of Object.entries(after)) headers.set(k, v);
      return new Response(bytes, { status: upstream.status, headers });
    } finally {
      if (!streaming) release();
    }
  };
}

interface RequestBody {
  body: string | Uint8Array | null;
  requestBytes: number;
  hideUsageChunk: boolean;
  model: string | undefined;
}

/** Reads the client's body and applies the key's rules to it when it is JSON. */
async function requestBody(
  req: Request,
  path: string,
  dialect: Dialect,
  key: KeyRecord,
  config: Config,
): Promise<RequestBody> {
  if (req.method === "GET" || req.method === "HEAD") {
    return { body: null, requestBytes: 0, hideUsageChunk: false, model: undefined };
  }
  const bytes = await readBody(req, config.maxBodyBytes, config.bodyTimeoutMs);
  const type = (req.headers.get("content-type") ?? "").toLowerCase();
  // Endpoints that name a model are always read as JSON, whatever the client
  // claims, so a key's model override cannot be dodged with a content type;
  // so is any body of a key with an override that turns out to be JSON.
  const forceJson = namesModel(dialect, path) || (key.model !== null && looksLikeJson(bytes));
  if (!type.includes("json") && !forceJson) {
    // Not ours to read (uploads and the like): forwarded as it came.
    return {
      body: bytes,
      requestBytes: bytes?.byteLength ?? 0,
      hideUsageChunk: false,
      model: undefined,
    };
  }
  const prepared = prepareBody(
    dialect,
    path,
    parseJsonObject(bytes),
    key.model,
    config.defaultModel,
  );
  const deferred = deferredWork(path, prepared.body);
  if (deferred) throw new GatewayError("invalid_request", deferred);
  const body = serialize(prepared.body);
  return {
    body,
    requestBytes: body.length,
    hideUsageChunk: prepared.hideUsageChunk,
    model: prepared.model,
  };
}

/** JSON.parse takes nesting that JSON.stringify cannot give back (a RangeError): the client's mistake. */
function serialize(body: unknown): string {
  try {
    return JSON.stringify(body);
  } catch {
    throw new GatewayError("invalid_request", "request body is nested too deeply");
  }
}

function looksLikeJson(bytes: Uint8Array | null): boolean {
  if (!bytes) return false;
  for (const b of bytes) {
    if (b === 0x20 || b === 0x0a || b === 0x0d || b === 0x09) continue;
    return b === 0x7b; // "{"
  }
  return false;
}

function tokensOf(dialect: Dialect, type: string | null, bytes: Uint8Array): number | null {
  if (!type?.includes("json") || bytes.byteLength === 0) return null;
  try {
    return responseTokens(dialect, JSON.parse(decoder.decode(bytes)));
  } catch {
    return null;
  }
}

async function readWhole(
  upstream: Response,
  limitMs: number,
  abort: AbortController,
): Promise<Uint8Array> {
  let silent = false;
  const timer = setTimeout(() => {
    silent = true;
    abort.abort();
  }, limitMs);
  try {
    return new Uint8Array(await upstream.arrayBuffer());
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
