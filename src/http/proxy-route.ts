import type { Context } from "hono";
import { openCharge } from "../accounting/charge.ts";
import type { UsageLedger } from "../accounting/ledger.ts";
import { TrustedProxies } from "../admin/client-address.ts";
import type { Config } from "../config.ts";
import { type Dialect, GatewayError } from "../errors.ts";
import { describeAllowed, filterModelList, modelAllowed } from "../keys/allowed-models.ts";
import type { KeyCache } from "../keys/cache.ts";
import type { Metrics } from "../metrics/registry.ts";
import { estimatedUsage, NO_TOKENS, type TokenUsage, totalTokens } from "../models/token-usage.ts";
import { checkPath, dialectOfPath } from "../proxy/endpoints.ts";
import { forward } from "../proxy/forward.ts";
import { clientHeaders, type HeaderPolicy, upstreamHeaders } from "../proxy/header-policy.ts";
import { estimateTokens, meteredStream } from "../proxy/metered-stream.ts";
import { outputCap, withOutputCap } from "../proxy/output-cap.ts";
import { readWhole } from "../proxy/read-whole.ts";
import { upstreamUrl } from "../proxy/request.ts";
import { classifyRefusal } from "../proxy/upstream-refusals.ts";
import { responseUsage } from "../proxy/usage.ts";
import { admit, keySpanMs } from "../quota/admission.ts";
import type { FairQueue } from "../quota/fair-queue.ts";
import { quotaHeaders } from "../quota/headers.ts";
import { InFlight } from "../quota/in-flight.ts";
import type { UsageView } from "../quota/usage-view.ts";
import { afterCharge } from "../quota/window.ts";
import type { KeyRecord } from "../storage/types.ts";
import type { AccessLogEnv } from "./access-log.ts";
import { requestSource } from "./admin/address.ts";
import { authenticate } from "./authenticate.ts";
import { defaultFailedKeyLimits, FailedKeyLimiter } from "./failed-keys.ts";
import type { IdleEnv } from "./idle-exemption.ts";
import { admissionRefusal, upstreamRefusal } from "./refusals.ts";
import { byteLength, requestBody, serialize } from "./request-body.ts";
import { upstreamQueue, upstreamSlot } from "./upstream-slot.ts";

export interface ProxyDeps {
  config: Config;
  metrics: Metrics;
  keys: KeyCache;
  usage: UsageView;
  ledger: UsageLedger;
  clock: () => number;
  /** Failed key authentications per client address (default: one per handler, counted in metrics). */
  failedKeys?: FailedKeyLimiter;
  /** Requests in flight per key and their reservations (default: one per handler). */
  inFlight?: InFlight;
  /** Fair queue for upstream slots (default: one per handler when UPSTREAM_MAX_CONCURRENCY is set). */
  upstreamQueue?: FairQueue | null;
}

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
  const inFlight = deps.inFlight ?? new InFlight();
  const queue =
    deps.upstreamQueue !== undefined
      ? deps.upstreamQueue
      : upstreamQueue(config.upstreamMaxConcurrency, config.upstreamQueueTimeoutMs, metrics);
  const failedKeys =
    deps.failedKeys ??
    new FailedKeyLimiter(defaultFailedKeyLimits, (reason) =>
      metrics.keyAuthFailures.inc({ reason }),
    );

  return async function proxy(c: Context<AccessLogEnv & IdleEnv>): Promise<Response> {
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
      failures: { limiter: failedKeys, address: () => requestSource(c, proxies).limiterKey },
    });
    access.fields.key = key.keyPrefix;
    if (!config.upstreamApiKey) {
      throw new GatewayError(
        "upstream_not_configured",
        "the gateway has no upstream key configured (UPSTREAM_API_KEY)",
      );
    }

    const prepared = await requestBody(req, path, dialect, key, config);
    if (prepared.model) access.fields.model = prepared.model;
    // Checked on the model that goes upstream: after the key's override and
    // the default model have applied.
    if (prepared.model !== undefined && !modelAllowed(key.allowedModels, prepared.model)) {
      access.fields.quota = "model";
      throw new GatewayError(
        "model_not_allowed",
        `this key may not use the model ${JSON.stringify(prepared.model)}; it may use: ${describeAllowed(key.allowedModels ?? [])}`,
      );
    }

    // Admission: the window's usage plus what the key's other requests in
    // flight have reserved. Everything from reading the usage to entering
    // the request runs without a pause, so parallel requests see each other.
    const mark = inFlight.mark(key.id);
    const buckets = await deps.usage.buckets(key.id, { spanMs: keySpanMs(key) });
    const concurrency = concurrencyLimitOf(key, config);
    if (concurrency !== null && inFlight.count(key.id) >= concurrency) {
      access.fields.quota = "concurrency";
      metrics.concurrencyRejections.inc({ dialect });
      throw new GatewayError(
        "concurrency_limit",
        `this key may have ${concurrency} request${concurrency === 1 ? "" : "s"} in flight at once; retry when one finishes (this is not the token quota)`,
        { "retry-after": "1" },
      );
    }
    const metered = endpoint.endpoint?.charging === "metered";
    const output = prepared.json ? outputCap(path, prepared.json) : null;
    const decision = admit({
      buckets,
      limit: key.tokenLimit,
      weeklyLimit: key.weeklyLimit,
      now,
      reservedByOthers: inFlight.reserved(key.id) + inFlight.settledSince(key.id, mark),
      // Only metered endpoints cost tokens; the rest reserve nothing.
      input: metered ? estimateTokens(byteLength(prepared.body), 0) : 0,
      output: metered ? output : null,
      policy: config.outputCapPolicy,
      defaultOutput: config.defaultOutputReservation,
      // Quotas count weighted units: the estimate and the cap are priced like the charge.
      weights: config.models.weights(prepared.model, now),
    });
    if (!decision.ok) throw admissionRefusal(decision, dialect, output, now, access, metrics);
    const state = decision.state;
    let body = prepared.body;
    if (decision.forwardCap !== null && prepared.json) {
      body = serialize(withOutputCap(path, prepared.json, decision.forwardCap));
      access.fields.output_cap = decision.forwardCap;
    }
    const requestBytes = byteLength(body);
    const hideUsageChunk = prepared.hideUsageChunk;
    const ticket = inFlight.enter(key.id, decision.reservation);
    // With UPSTREAM_MAX_CONCURRENCY, wait (fairly between keys) for an
    // upstream slot, holding the reservation; the slot is held until the
    // answer is over upstream (a stream: its end, or its cut).
    const slot = await upstreamSlot(
      queue,
      key.id,
      req.signal,
      dialect,
      access,
      metrics,
      config.upstreamQueueTimeoutMs,
    ).catch((err: unknown) => {
      ticket.release();
      throw err;
    });

    // From here the request may cost tokens: it is charged exactly once, in
    // weighted units (see accounting/charge.ts), and its reservation gives
    // way to the charge in the same step.
    const bill = openCharge(
      { ledger, models: config.models, clock: deps.clock },
      {
        keyId: key.id,
        model: prepared.model,
        settle: (units) => ticket.settle(units),
        estimate: () => estimatedUsage(estimateTokens(requestBytes, 0)),
      },
    );
    const release = () => {
      bill.close();
      ticket.release();
      slot?.release();
    };
    let streaming = false;
    try {
      const outHeaders = upstreamHeaders(req.headers, dialect, config.upstreamApiKey, headerPolicy);
      if (typeof body === "string") outHeaders.set("content-type", "application/json");
      const sentAt = performance.now();
      const abort = new AbortController();
      const send = () =>
        forward({
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
          abort,
        }).catch((err: unknown) => {
          if (err instanceof GatewayError)
            metrics.upstreamErrors.inc({ dialect, reason: err.code });
          throw err;
        });
      let upstream = await send();
      // A 429 of the upstream's own is read and classified: too many requests
      // at once is tried once more after a short wait; a spent plan, or a
      // second refusal, becomes the gateway's own 429. Neither is charged.
      let preread: Uint8Array | undefined;
      if (upstream.status === 429) {
        preread = await readWhole(upstream, config.upstreamIdleTimeoutMs, abort);
        let refusal = classifyRefusal(429, upstream.headers, decode(preread), deps.clock());
        if (refusal?.kind === "busy" && refusal.waitMs <= BUSY_RETRY_MAX_WAIT_MS) {
          await Bun.sleep(Math.max(BUSY_RETRY_MIN_MS, refusal.waitMs));
          upstream = await send();
          preread = undefined;
          if (upstream.status === 429) {
            preread = await readWhole(upstream, config.upstreamIdleTimeoutMs, abort);
            refusal = classifyRefusal(429, upstream.headers, decode(preread), deps.clock());
          } else refusal = null;
        }
        if (refusal) {
          access.fields.upstream_refusal = refusal.kind;
          metrics.upstreamErrors.inc({ dialect, reason: `refused_${refusal.kind}` });
          throw upstreamRefusal(refusal, dialect, state, deps.clock());
        }
      }
      metrics.upstreamTtfb.observe({ dialect }, (performance.now() - sentAt) / 1000);

      const headers = clientHeaders(upstream.headers, upstream.status);
      const isStream = (upstream.headers.get("content-type") ?? "").includes("text/event-stream");
      if (isStream && upstream.body && upstream.ok) {
        for (const [k, v] of Object.entries(quotaHeaders(dialect, state, now))) headers.set(k, v);
        const writeLog = access.defer();
        const restoreIdle = c.get("idle")?.defer();
        streaming = true;
        const stream = meteredStream({
          upstream: upstream.body,
          dialect,
          hideUsageChunk,
          drainMs: config.streamDrainMs,
          idleMs: config.upstreamIdleTimeoutMs,
          onForceable: (force) => bill.forceWith(force),
          onIdle: () => abort.abort(),
          onEnd: restoreIdle,
          requestBytes,
          onDone: (outcome, usage) => {
            try {
              bill.charge(usage);
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
      let bytes = preread ?? (await readWhole(upstream, config.upstreamIdleTimeoutMs, abort));
      // The model list shows a key only the models it may use.
      if (path === "/v1/models" && upstream.ok && key.allowedModels !== null) {
        bytes = filterModelList(bytes, key.allowedModels);
        headers.delete("content-length");
      }
      const usage = usageOf(dialect, headers.get("content-type"), bytes);
      const tokens = totalTokens(usage);
      bill.charge(usage);
      metrics.upstreamDuration.observe(
        { dialect, stream: "false" },
        (performance.now() - sentAt) / 1000,
      );
      metrics.tokens.inc({ dialect }, tokens);
      access.fields.tokens = tokens;
      const after = quotaHeaders(dialect, afterCharge(state, bill.units, now), now);
      for (const [k, v] of Object.entries(after)) headers.set(k, v);
      return new Response(bytes, { status: upstream.status, headers });
    } finally {
      if (!streaming) release();
    }
  };
}

/** Key-level limit on requests in flight: the key's own, else the default (null: none). */
function concurrencyLimitOf(key: KeyRecord, config: Config): number | null {
  return key.maxConcurrent ?? config.defaultKeyConcurrency;
}

/** A busy upstream is tried once more when it names a wait no longer than this. */
const BUSY_RETRY_MAX_WAIT_MS = 2_000;
/** The least wait before that one retry. */
const BUSY_RETRY_MIN_MS = 250;

const decode = (bytes: Uint8Array) => new TextDecoder().decode(bytes);

function usageOf(dialect: Dialect, type: string | null, bytes: Uint8Array): TokenUsage {
  if (!type?.includes("json") || bytes.byteLength === 0) return NO_TOKENS;
  try {
    return responseUsage(dialect, JSON.parse(decoder.decode(bytes))) ?? NO_TOKENS;
  } catch {
    return NO_TOKENS;
  }
}
