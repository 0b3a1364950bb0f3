import { type Bucket, WEEK_MS, WINDOW_MS } from "../time/buckets.ts";
import { msUntilUsageAtMost, type WindowState, windowState } from "./window.ts";

// Whether a request may start, and what it reserves of its key's quota. Pure.
//
// A request reserves its input estimate plus its output cap (each answer it
// asks for may reach the cap) until its real usage is charged. It is admitted
// while the window's usage plus the key's other reservations is under the
// limit, and only when its own reservation fits in what remains: a request
// whose cap does not fit is refused, or has its cap lowered (the operator's
// choice). A request that names no cap reserves a default; it is never
// refused for it, but when less than the default remains it is forwarded
// with a cap of what remains (at least one token), so that it cannot run
// far past the limit either.
//
// Quotas count weighted units (MODELS_FILE): the input estimate and the cap
// are in tokens, so they are turned into units with the model's dearest
// weight for each side, and a lowered cap is one whose units fit.

export type CapPolicy = "refuse" | "clamp";

export interface AdmissionRequest {
  buckets: readonly Bucket[];
  limit: number;
  /** Tokens per rolling 7 days, or null for no weekly window. */
  weeklyLimit: number | null;
  now: number;
  /** Tokens the key's other requests in flight hold (plus any charged while usage was read). */
  reservedByOthers: number;
  /** Estimated input tokens. */
  input: number;
  /** Output side: null for endpoints that generate none. */
  output: { named: number | null; answers: number } | null;
  policy: CapPolicy;
  /** Output tokens reserved per answer when the request names no cap. */
  defaultOutput: number;
  /** Units per token of input and of output for the request's model (1 and 1 without a models file). */
  weights?: { input: number; output: number };
}

// With a weekly limit too, every window must admit, and what remains is the
// least either leaves. `state` is then the window that binds first, which the
// quota headers and Retry-After describe.

export type Admission =
  | {
      ok: true;
      state: WindowState;
      /** Tokens held until the request's usage is charged. */
      reservation: number;
      /** A cap to forward instead of the request's own (per answer), or null to leave it. */
      forwardCap: number | null;
    }
  | {
      ok: false;
      /**
       * - `spent`: the window's usage is at the limit.
       * - `reserved`: what is left is held by the key's requests in flight.
       * - `cap`: the cap this request names does not fit, beside its input,
       *   in what remains.
       */
      reason: "spent" | "reserved" | "cap";
      state: WindowState;
      /** What remains for this request: limit - usage - others' reservations. */
      remaining: number;
      /** Tokens this request would reserve (`cap` only). */
      needed: number;
      /** Ms until it could be admitted; Infinity when it never can be. */
      retryAfterMs: number;
    };

/** The wait when only other requests' reservations stand in the way: they end soon. */
export const RESERVED_RETRY_MS = 1000;

/** How far back a key's usage counts: a week when it has a weekly limit. */
export function keySpanMs(key: { weeklyLimit: number | null }): number {
  return key.weeklyLimit === null ? WINDOW_MS : WEEK_MS;
}

/** The key's windows at `now`: the 5-hour one, and the weekly one when it has one. */
export function windowStates(
  buckets: readonly Bucket[],
  limit: number,
  weeklyLimit: number | null,
  now: number,
): WindowState[] {
  const states = [windowState(buckets, limit, now, WINDOW_MS)];
  if (weeklyLimit !== null) states.push(windowState(buckets, weeklyLimit, now, WEEK_MS));
  return states;
}

/**
 * The window that binds first: one that is spent (the one with the longest
 * wait, as every spent window must free up), else the one with the least
 * remaining (the 5-hour one on a tie).
 */
export function bindingWindow(states: readonly WindowState[]): WindowState {
  const [first, ...rest] = states;
  if (!first) throw new Error("a key has at least one window");
  let best = first;
  for (const s of rest) {
    if (!s.allowed) {
      if (best.allowed || s.retryAfterMs > best.retryAfterMs) best = s;
    } else if (best.allowed && s.remaining < best.remaining) best = s;
  }
  return best;
}

export function admit(r: AdmissionRequest): Admission {
  const buckets = r.buckets;
  const states = windowStates(buckets, r.limit, r.weeklyLimit, r.now);
  const state = bindingWindow(states);
  let least = Number.POSITIVE_INFINITY;
  for (const s of states) least = Math.min(least, s.limit - s.used);
  const remaining = least - r.reservedByOthers;
  if (!state.allowed) {
    return {
      ok: false,
      reason: "spent",
      state,
      remaining: 0,
      needed: 0,
      retryAfterMs: state.retryAfterMs,
    };
  }
  if (remaining <= 0) {
    return {
      ok: false,
      reason: "reserved",
      state,
      remaining: 0,
      needed: 0,
      retryAfterMs: RESERVED_RETRY_MS,
    };
  }
  const inWeight = r.weights?.input ?? 1;
  const outWeight = r.weights?.output ?? 1;
  const input = Math.max(0, Math.ceil(r.input * inWeight));
  const answers = Math.max(1, r.output?.answers ?? 1);
  /** Units held for `cap` output tokens per answer. */
  const outputUnits = (cap: number) => Math.ceil(cap * outWeight) * answers;
  // Output tokens per answer whose units fit beside the input in what remains.
  const room = outWeight > 0 ? Math.floor((remaining - input) / answers / outWeight) : Infinity;
  const named = r.output?.named ?? null;
  if (r.output === null) return { ok: true, state, reservation: input, forwardCap: null };
  if (named === null) {
    if (room >= r.defaultOutput) {
      return {
        ok: true,
        state,
        reservation: input + outputUnits(r.defaultOutput),
        forwardCap: null,
      };
    }
    // Never refused for its default: capped to what remains (at least one token).
    const cap = Math.max(1, room);
    return { ok: true, state, reservation: input + outputUnits(cap), forwardCap: cap };
  }
  if (named <= room) {
    return { ok: true, state, reservation: input + outputUnits(named), forwardCap: null };
  }
  if (r.policy === "clamp" && room >= 1) {
    return { ok: true, state, reservation: input + outputUnits(room), forwardCap: room };
  }
  const needed = input + outputUnits(named);
  // Admitted once enough usage ages out of every window (the other requests
  // in flight will have ended by then); if nothing needs to age out, it is
  // their reservations that stand in the way, and those go soon.
  let retryAfterMs = 0;
  let binding = state;
  for (const s of states) {
    const wait =
      needed > s.limit
        ? Number.POSITIVE_INFINITY
        : msUntilUsageAtMost(buckets, s.limit - needed, r.now, s.spanMs);
    if (wait > retryAfterMs) {
      retryAfterMs = wait;
      binding = s;
    }
  }
  if (retryAfterMs === 0) retryAfterMs = RESERVED_RETRY_MS;
  return { ok: false, reason: "cap", state: binding, remaining, needed, retryAfterMs };
}
