// Requests in flight per key on this instance: how many, and how many tokens
// they have reserved against the key's quota until their usage is charged.

interface KeyFlight {
  count: number;
  reserved: number;
  /** Tokens charged through tickets so far (only grows). */
  settled: number;
}

/** One admitted request's place: settled once with its real cost, or released. */
export interface Ticket {
  /** Its usage is charged: the reservation gives way to `tokens` of real usage. */
  settle(tokens: number): void;
  /** It is over without a charge through this ticket (failed, refused upstream). */
  release(): void;
}

export class InFlight {
  // Entries stay once made: one per key that has had a request here, which
  // is bounded by the number of real keys (unknown keys never get this far).
  private readonly keys = new Map<string, KeyFlight>();

  private entry(keyId: string): KeyFlight {
    let e = this.keys.get(keyId);
    if (!e) {
      e = { count: 0, reserved: 0, settled: 0 };
      this.keys.set(keyId, e);
    }
    return e;
  }

  count(keyId: string): number {
    return this.keys.get(keyId)?.count ?? 0;
  }

  reserved(keyId: string): number {
    return this.keys.get(keyId)?.reserved ?? 0;
  }

  /**
   * A mark to take before reading a key's usage. `settledSince(mark)` then
   * says how much was charged while the read was under way, which the read
   * may have missed just as the reservations it replaced were released.
   */
  mark(keyId: string): number {
    return this.keys.get(keyId)?.settled ?? 0;
  }

  settledSince(keyId: string, mark: number): number {
    return Math.max(0, this.mark(keyId) - mark);
  }

  /** Admits one request holding `reservation` tokens until it settles or is released. */
  enter(keyId: string, reservation: number): Ticket {
    const e = this.entry(keyId);
    const held = Math.max(0, reservation);
    e.count++;
    e.reserved += held;
    let open = true;
    const close = (tokens: number) => {
      if (!open) return;
      open = false;
      e.count--;
      e.reserved -= held;
      e.settled += tokens;
    };
    return { settle: (tokens) => close(Math.max(0, tokens)), release: () => close(0) };
  }
}
