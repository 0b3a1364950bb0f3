import { type ChargeHandle, type ChargeRequest, openCharge } from "../../accounting/charge.ts";
import type { UsageLedger } from "../../accounting/ledger.ts";
import type { Config } from "../../config.ts";
import { type Dialect, GatewayError } from "../../errors.ts";
import { describeAllowed, modelAllowed } from "../../keys/allowed-models.ts";
import type { Metrics } from "../../metrics/registry.ts";
import { estimatedUsage } from "../../models/token-usage.ts";
import { forward } from "../../proxy/forward.ts";
import { clientHeaders, type HeaderPolicy, upstreamHeaders } from "../../proxy/header-policy.ts";
import { estimateTokens } from "../../proxy/metered-stream.ts";
import { outputCap, withOutputCap } from "../../proxy/output-cap.ts";
import { upstreamUrl } from "../../proxy/request.ts";
import { callUpstream } from "../../proxy/upstream-call.ts";
import type { Slot } from "../../quota/fair-queue.ts";
import { InFlight, type Ticket } from "../../quota/in-flight.ts";
import { KeyAdmissions } from "../../quota/key-admission.ts";
import type { UsageView } from "../../quota/usage-view.ts";
import type { KeyRecord } from "../../storage/types.ts";
import type { AccessLog } from "../access-log.ts";
import type { IdleExemption } from "../idle-exemption.ts";
import { type Answering, streamAnswer, wholeAnswer } from "./answer.ts";
import { admissionRefusal, concurrencyRefusal, upstreamRefusal } from "./refusals.ts";
import { byteLength, giveBack, requestBody, serialize } from "./request-body.ts";
import type { ProxyTarget } from "./target.ts";
import { upstreamQueue, upstreamSlot } from "./upstream-slot.ts";

export interface ProxyDeps {
  config: Config;
  metrics: Metrics;
  usage: UsageView;
  ledger: UsageLedger;
  clock: () => number;
}

/**
 * Every /v1/* request, once its target is checked and its key known
 * (entry.ts, with target.ts and key.ts): read the body under the key's
 * rules, admit it against the key's quota, wait for an upstream slot, open
 * its one charge, forward it with the operator's key, and answer (streamed
 * as it arrives) charging what the upstream reports. Each step lives in its own module; this one only
 * puts them in order.
 */
export function proxyHandler(deps: ProxyDeps) {
  const { config, ledger, metrics, clock } = deps;
  const bases: Record<Dialect, string> = {
    openai: config.upstreamOpenaiUrl,
    anthropic: config.upstreamAnthropicUrl,
  };
  const headerPolicy: HeaderPolicy = {
    extraRequestHeaders: new Set(config.extraRequestHeaders),
    anthropicBetas: config.allowedAnthropicBetas ? new Set(config.allowedAnthropicBetas) : null,
  };
  const admissions = new KeyAdmissions(deps.usage, new InFlight(), config);
  const queue = upstreamQueue(
    config.upstreamMaxConcurrency,
    config.upstreamQueueTimeoutMs,
    metrics,
  );

  return async function proxy(
    req: Request,
    { dialect, path, url, endpoint }: ProxyTarget,
    key: KeyRecord,
    access: AccessLog,
    idle: IdleExemption | null,
  ): Promise<Response> {
    if (!config.upstreamApiKey) {
      throw new GatewayError(
        "upstream_not_configured",
        "the gateway has no upstream key configured (UPSTREAM_API_KEY)",
      );
    }

    // The body, with the key's rules applied (model override, default model).
    const prepared = await requestBody(req, path, dialect, key, config);
    if (prepared.model) access.fields.model = prepared.model;
    // Checked on the model that goes upstream: after the override and default.
    if (prepared.model !== undefined && !modelAllowed(key.allowedModels, prepared.model)) {
      access.fields.quota = "model";
      throw new GatewayError(
        "model_not_allowed",
        `this key may not use the model ${JSON.stringify(prepared.model)}; it may use: ${describeAllowed(key.allowedModels ?? [])}`,
      );
    }

    // Admission: the window's usage plus what the key's other requests in
    // flight have reserved. Only metered endpoints cost tokens; quotas count
    // weighted units, so the estimate and the cap are priced like the charge.
    const now = clock();
    const metered = endpoint?.charging === "metered";
    const output = prepared.json ? outputCap(path, prepared.json) : null;
    const admitted = await admissions.admit(key, {
      now,
      input: metered ? estimateTokens(byteLength(prepared.body), 0) : 0,
      output: metered ? output : null,
      weights: config.models.weights(prepared.model, now),
    });
    if (!admitted.ok) {
      throw admitted.reason === "concurrency"
        ? concurrencyRefusal(admitted.limit, dialect, access, metrics)
        : admissionRefusal(admitted.refusal, dialect, output, now, access, metrics);
    }
    const { state, ticket } = admitted;
    let body = prepared.body;
    if (admitted.forwardCap !== null && prepared.json) {
      try {
        body = serialize(withOutputCap(path, prepared.json, admitted.forwardCap));
      } catch (err) {
        ticket.release();
        throw err;
      }
      access.fields.output_cap = admitted.forwardCap;
    }
    const requestBytes = byteLength(body);

    // With UPSTREAM_MAX_CONCURRENCY, wait (fairly between keys) for an
    // upstream slot, holding the reservation; the slot is held until the
    // answer is over upstream (a stream: its end, or its cut).
    const slot = queue
      ? await upstreamSlot(
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
        })
      : null;

    // From here the request may cost tokens: it is charged exactly once, in
    // weighted units (accounting/charge.ts), and its reservation gives way
    // to the charge in the same step.
    const bill = openCharge(
      { ledger, models: config.models, clock },
      chargeRequest(key.id, prepared.model, ticket, requestBytes),
    );
    const release = releaser(bill, ticket, slot);
    let streaming = false;
    try {
      const headers = upstreamHeaders(req.headers, dialect, config.upstreamApiKey, headerPolicy);
      if (prepared.json) headers.set("content-type", "application/json");
      const target = upstreamUrl(
        dialect,
        bases[dialect],
        path,
        url.search,
        endpoint ? "known" : "any",
      );
      const abort = new AbortController();
      const sentAt = performance.now();
      const send = () =>
        forward({
          method: req.method,
          url: target,
          headers,
          body,
          timeoutMs: config.upstreamTimeoutMs,
          abort,
        }).catch((err: unknown) => {
          if (err instanceof GatewayError)
            metrics.upstreamErrors.inc({ dialect, reason: err.code });
          throw err;
        });
      const call = await callUpstream(send, config.upstreamIdleTimeoutMs, abort, clock);
      // Nothing is sent again: a large body's memory goes back now.
      giveBack(prepared);
      if (!call.ok) {
        access.fields.upstream_refusal = call.refusal.kind;
        metrics.upstreamErrors.inc({ dialect, reason: `refused_${call.refusal.kind}` });
        throw upstreamRefusal(call.refusal, dialect, state, clock());
      }
      const upstream = call.response;
      metrics.upstreamTtfb.observe({ dialect }, (performance.now() - sentAt) / 1000);

      const answering: Answering = {
        dialect,
        access,
        metrics,
        bill,
        state,
        now,
        sentAt,
        abort,
        idleMs: config.upstreamIdleTimeoutMs,
      };
      const answerHeaders = clientHeaders(upstream.headers, upstream.status);
      const isStream = (upstream.headers.get("content-type") ?? "").includes("text/event-stream");
      if (isStream && upstream.body && upstream.ok) {
        const onEnd = idle?.defer();
        streaming = true;
        return streamAnswer(answering, upstream.body, upstream.status, answerHeaders, {
          hideUsageChunk: prepared.hideUsageChunk,
          drainMs: config.streamDrainMs,
          requestBytes,
          onEnd,
          release,
        });
      }
      const allowedModels = path === "/v1/models" ? key.allowedModels : null;
      return await wholeAnswer(answering, upstream, call.preread, answerHeaders, allowedModels);
    } finally {
      if (!streaming) release();
    }
  };
}

// The charge and the release outlive the route: the ledger holds the charge
// until the answer is over (for shutdown to force it), and a stream holds
// the release. Closures made inside the route would share its scope and so
// hold all it holds (the request, its headers, its body) as long, and the
// ledger's hold, long-lived itself, would keep every request in flight out
// of the young generation: measured, that cost a sixth of the CPU of a
// request in extra garbage collection. So they are made out here, over
// only what they need.

function chargeRequest(
  keyId: string,
  model: string | undefined,
  ticket: Ticket,
  requestBytes: number,
): ChargeRequest {
  return {
    keyId,
    model,
    settle: (units) => ticket.settle(units),
    estimate: () => estimatedUsage(estimateTokens(requestBytes, 0)),
  };
}

function releaser(bill: ChargeHandle, ticket: Ticket, slot: Slot | null): () => void {
  return () => {
    bill.close();
    ticket.release();
    slot?.release();
  };
}
