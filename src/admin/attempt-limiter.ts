// Failed admin sign-ins per client address: after `max` failures within
// `windowMs` of the first, the address is refused until that window passes.
// A success forgets nothing: failures only expire with their window, so a
// legitimate script polling from the same address (or through the same
// proxy) cannot wipe out an attacker's count between guesses.
// Memory is bounded: finished windows are swept, and past `maxAddresses` the
// oldest entries go first (an attacker with many addresses gets no more
// guesses per address for it, only evicts others' counters).

export interface AttemptLimiterOptions {
  max: number;
  windowMs: number;
  maxAddresses: number;
}

export const defaultAttemptLimits: AttemptLimiterOptions = {
  max: 10,
  windowMs: 15 * 60 * 1000,
  maxAddresses: 10_000,
};

interface Entry {
  firstAt: number;
  failures: number;
}

export class AttemptLimiter {
  private readonly entries = new Map<string, Entry>();
  private lastSweep = 0;

  constructor(private readonly options: AttemptLimiterOptions = defaultAttemptLimits) {}

  /** Ms the address must still wait, or 0 when it may try. */
  blockedFor(address: string, now: number): number {
    const e = this.entries.get(address);
    if (!e) return 0;
    const ends = e.firstAt + this.options.windowMs;
    if (now >= ends) {
      this.entries.delete(address);
      return 0;
    }
    return e.failures >= this.options.max ? ends - now : 0;
  }

  /** Records a failure; returns the failures counted for the address in its window. */
  fail(address: string, now: number): number {
    this.sweep(now);
    let e = this.entries.get(address);
    if (!e || now >= e.firstAt + this.options.windowMs) {
      this.entries.delete(address);
      e = { firstAt: now, failures: 0 };
      this.entries.set(address, e);
    }
    e.failures++;
    while (this.entries.size > this.options.maxAddresses) {
      const oldest = this.entries.keys().next().value;
      if (oldest === undefined) break;
      this.entries.delete(oldest);
    }
    return e.failures;
  }

  get size(): number {
    return this.entries.size;
  }

  private sweep(now: number): void {
    if (now - this.lastSweep < 60_000 && this.entries.size < this.options.maxAddresses) return;
    this.lastSweep = now;
    // Insertion order is first-failure order: stop at the first live window.
    for (const [address, e] of this.entries) {
      if (now < e.firstAt + this.options.windowMs) break;
      this.entries.delete(address);
    }
  }
}
