import { AttemptLimiter, type AttemptLimiterOptions } from "../admin/attempt-limiter.ts";

// Failed key authentications on the API, counted per client address (the
// same trusted-proxy rules and IPv6 /64 grouping as the admin sign-in). An
// address past its limit is not refused outright: keys this instance already
// knows are served as ever, and a key it has not seen may still be looked up
// once per `uncachedEveryMs`, so a real key is never locked out by a
// neighbour behind the same address. Only the database lookups of a flood of
// made-up keys are cut off.

export const defaultFailedKeyLimits: AttemptLimiterOptions & { uncachedEveryMs: number } = {
  max: 20,
  windowMs: 5 * 60 * 1000,
  maxAddresses: 10_000,
  uncachedEveryMs: 1000,
};

export type FailureReason = "unknown" | "malformed" | "refused";

export class FailedKeyLimiter {
  private readonly attempts: AttemptLimiter;
  /** Blocked addresses: when each last had an unseen key looked up. */
  private readonly lastUncached = new Map<string, number>();

  constructor(
    private readonly options = defaultFailedKeyLimits,
    private readonly onFailure: (reason: FailureReason) => void = () => {},
  ) {
    this.attempts = new AttemptLimiter(options);
  }

  /**
   * Whether a key this instance does not know may be looked up for the
   * address now; otherwise the ms to wait.
   */
  mayLookUp(address: string, now: number): number {
    const blocked = this.attempts.blockedFor(address, now);
    if (blocked === 0) {
      this.lastUncached.delete(address);
      return 0;
    }
    const last = this.lastUncached.get(address);
    if (last !== undefined && now - last < this.options.uncachedEveryMs) {
      this.onFailure("refused");
      return this.options.uncachedEveryMs - (now - last);
    }
    this.lastUncached.delete(address);
    this.lastUncached.set(address, now);
    while (this.lastUncached.size > this.options.maxAddresses) {
      const oldest = this.lastUncached.keys().next().value;
      if (oldest === undefined) break;
      this.lastUncached.delete(oldest);
    }
    return 0;
  }

  /** A key that does not exist, or could not be one, was presented. */
  fail(address: string, reason: "unknown" | "malformed", now: number): void {
    this.onFailure(reason);
    this.attempts.fail(address, now);
  }
}
