import type { KeyRecord } from "../storage/types.ts";
import {
  type Admission,
  type AdmissionRequest,
  admit,
  type CapPolicy,
  keySpanMs,
} from "./admission.ts";
import type { InFlight, Ticket } from "./in-flight.ts";
import type { UsageView } from "./usage-view.ts";
import type { WindowState } from "./window.ts";

// The admission step of a proxied request: the key's window usage, its
// requests in flight and its concurrency limit, decided in one place. The
// rules themselves are pure (admission.ts); this reads what they need.

export interface AdmissionPolicy {
  outputCapPolicy: CapPolicy;
  defaultOutputReservation: number;
  /** Requests in flight per key when the key sets none (null: no limit). */
  defaultKeyConcurrency: number | null;
}

/** What a request asks of its key's quota, in tokens, and how its model prices them. */
export interface QuotaAsk {
  now: number;
  input: number;
  output: AdmissionRequest["output"];
  weights: AdmissionRequest["weights"];
}

export type KeyAdmission =
  | {
      ok: true;
      state: WindowState;
      /** A cap to forward instead of the request's own, or null to leave it. */
      forwardCap: number | null;
      /** The request's place among the key's requests in flight: settle it or release it. */
      ticket: Ticket;
    }
  | { ok: false; reason: "concurrency"; limit: number }
  | { ok: false; reason: "quota"; refusal: Extract<Admission, { ok: false }> };

type AdmittedKey = Pick<KeyRecord, "id" | "tokenLimit" | "weeklyLimit" | "maxConcurrent">;

export class KeyAdmissions {
  constructor(
    private readonly usage: Pick<UsageView, "buckets">,
    readonly inFlight: InFlight,
    private readonly policy: AdmissionPolicy,
  ) {}

  /**
   * Admits a request or says why not. Everything from reading the usage to
   * entering the request runs without a pause, so the key's parallel
   * requests see each other's reservations.
   */
  async admit(key: AdmittedKey, ask: QuotaAsk): Promise<KeyAdmission> {
    const { inFlight } = this;
    const mark = inFlight.mark(key.id);
    const buckets = await this.usage.buckets(key.id, { spanMs: keySpanMs(key) });
    const limit = key.maxConcurrent ?? this.policy.defaultKeyConcurrency;
    if (limit !== null && inFlight.count(key.id) >= limit) {
      return { ok: false, reason: "concurrency", limit };
    }
    const decision = admit({
      buckets,
      limit: key.tokenLimit,
      weeklyLimit: key.weeklyLimit,
      now: ask.now,
      reservedByOthers: inFlight.reserved(key.id) + inFlight.settledSince(key.id, mark),
      input: ask.input,
      output: ask.output,
      policy: this.policy.outputCapPolicy,
      defaultOutput: this.policy.defaultOutputReservation,
      weights: ask.weights,
    });
    if (!decision.ok) return { ok: false, reason: "quota", refusal: decision };
    return {
      ok: true,
      state: decision.state,
      forwardCap: decision.forwardCap,
      ticket: inFlight.enter(key.id, decision.reservation),
    };
  }
}
