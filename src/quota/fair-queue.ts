// Slots for requests in flight upstream (UPSTREAM_MAX_CONCURRENCY), shared
// fairly between keys. When every slot is taken, a request waits; a freed
// slot goes to the waiting key served least recently (a key that has never
// been served comes first, then the order its waiters arrived in). Between
// keys that keep waiting this is round robin; a key that sends a request now
// and then goes ahead of one that floods, so it waits for at most one slot
// to free up, not for the flood's whole backlog. Within a key, first come,
// first served.
//
// The choice of who goes next is pure (`nextKey`); the class around it only
// adds the waiting: promises, a timeout and the client's abort signal.

/** Why a wait ended without a slot. */
export type QueueRefusal = "timeout" | "aborted";

/** A slot in use: give it back exactly once, when the request is over upstream. */
export interface Slot {
  release(): void;
  /** Milliseconds spent waiting for it (0 when one was free). */
  waitedMs: number;
}

export type Acquired =
  | { ok: true; slot: Slot }
  | { ok: false; reason: QueueRefusal; waitedMs: number };

interface Waiter {
  seq: number;
  enqueuedAt: number;
  grant: (slot: Slot) => void;
}

interface KeyState {
  waiters: Waiter[];
  /** The tick of the last slot this key was given; -1 for never. */
  lastServed: number;
}

/** The key that gets the next free slot: least recently served, then the earliest waiter. */
export function nextKey(
  candidates: Iterable<[string, { lastServed: number; headSeq: number }]>,
): string | undefined {
  let best: string | undefined;
  let bestServed = 0;
  let bestSeq = 0;
  for (const [key, s] of candidates) {
    if (
      best === undefined ||
      s.lastServed < bestServed ||
      (s.lastServed === bestServed && s.headSeq < bestSeq)
    ) {
      best = key;
      bestServed = s.lastServed;
      bestSeq = s.headSeq;
    }
  }
  return best;
}

export interface FairQueueOptions {
  /** Slots: requests in flight upstream at once. */
  limit: number;
  /** Longest wait for a slot before giving up. */
  timeoutMs: number;
  clock?: () => number;
  /** Told whenever the number of waiting requests changes. */
  onDepth?: (depth: number) => void;
}

export class FairQueue {
  private readonly limit: number;
  private readonly timeoutMs: number;
  private readonly clock: () => number;
  private readonly onDepth: (depth: number) => void;
  private busy = 0;
  private waiting = 0;
  private tick = 0;
  private seq = 0;
  // One entry per key that has waited; bounded by the number of real keys.
  private readonly keys = new Map<string, KeyState>();

  constructor(o: FairQueueOptions) {
    if (!Number.isInteger(o.limit) || o.limit < 1) throw new Error("limit must be at least 1");
    this.limit = o.limit;
    this.timeoutMs = o.timeoutMs;
    this.clock = o.clock ?? Date.now;
    this.onDepth = o.onDepth ?? (() => {});
  }

  /** Requests waiting for a slot. */
  get depth(): number {
    return this.waiting;
  }

  /** Slots in use. */
  get inUse(): number {
    return this.busy;
  }

  /** A slot at once when one is free and nobody waits, else a place in the queue. */
  acquire(keyId: string, signal?: AbortSignal): Promise<Acquired> {
    if (signal?.aborted) return Promise.resolve({ ok: false, reason: "aborted", waitedMs: 0 });
    if (this.busy < this.limit && this.waiting === 0) {
      this.served(keyId);
      return Promise.resolve({ ok: true, slot: this.slot(0) });
    }
    const state = this.stateOf(keyId);
    const enqueuedAt = this.clock();
    return new Promise<Acquired>((resolve) => {
      const leave = (reason: QueueRefusal) => {
        const i = state.waiters.indexOf(waiter);
        if (i < 0) return;
        state.waiters.splice(i, 1);
        this.setDepth(this.waiting - 1);
        done();
        resolve({ ok: false, reason, waitedMs: this.clock() - enqueuedAt });
      };
      const onAbort = () => leave("aborted");
      const timer = setTimeout(() => leave("timeout"), this.timeoutMs);
      const done = () => {
        clearTimeout(timer);
        signal?.removeEventListener("abort", onAbort);
      };
      const waiter: Waiter = {
        seq: this.seq++,
        enqueuedAt,
        grant: (slot) => {
          done();
          resolve({ ok: true, slot });
        },
      };
      signal?.addEventListener("abort", onAbort, { once: true });
      state.waiters.push(waiter);
      this.setDepth(this.waiting + 1);
    });
  }

  private stateOf(keyId: string): KeyState {
    let s = this.keys.get(keyId);
    if (!s) {
      s = { waiters: [], lastServed: -1 };
      this.keys.set(keyId, s);
    }
    return s;
  }

  private served(keyId: string): void {
    this.stateOf(keyId).lastServed = this.tick++;
  }

  private setDepth(n: number): void {
    this.waiting = n;
    this.onDepth(n);
  }

  private slot(waitedMs: number): Slot {
    this.busy++;
    let held = true;
    return {
      waitedMs,
      release: () => {
        if (!held) return;
        held = false;
        this.busy--;
        this.handOn();
      },
    };
  }

  /** Gives free slots to the waiters whose turn it is. */
  private handOn(): void {
    while (this.busy < this.limit && this.waiting > 0) {
      const candidates: [string, { lastServed: number; headSeq: number }][] = [];
      for (const [key, s] of this.keys) {
        const head = s.waiters[0];
        if (head) candidates.push([key, { lastServed: s.lastServed, headSeq: head.seq }]);
      }
      const key = nextKey(candidates);
      if (key === undefined) return;
      const state = this.stateOf(key);
      const waiter = state.waiters.shift() as Waiter;
      this.setDepth(this.waiting - 1);
      this.served(key);
      waiter.grant(this.slot(this.clock() - waiter.enqueuedAt));
    }
  }
}
