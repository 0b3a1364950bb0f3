import { UNVERIFIED_PREFIX } from "../keys/cache.ts";
import type { Logger } from "../log.ts";
import type { KeyUsage, Storage } from "../storage/types.ts";
import { bucketStartOf } from "../time/buckets.ts";
import { SingleFlight } from "../util/single-flight.ts";
import { withTimeout } from "../util/timeout.ts";
import type { ChargeDetail, Journal, UsageEvent } from "./journal.ts";
import { aggregateModels } from "./model-usage.ts";

/** A write that takes longer than this is given up on (and retried; see `flushOnce`). */
const APPLY_TIMEOUT_MS = 15_000;

/** Above this size a journal that cannot simply be emptied is rewritten. */
const COMPACT_BYTES = 16 * 1024 * 1024;

/**
 * How many flushes `flushedSince` looks back over: six seconds of steady
 * flushing at the default interval, where a key in use is re-read every
 * half second.
 */
const RECENT_FLUSHES = 128;

/** One flush: each key's tokens and requests, nothing more (not its buckets). */
interface RecentFlush {
  flushNo: number;
  keyIds: string[];
  tokens: number[];
  requests: number[];
}

export interface LedgerDeps {
  storage: Storage;
  journal: Journal;
  instanceId: string;
  clock: () => number;
  log: Logger;
  /** Called after a batch is committed, with a number that grows with each commit. */
  onFlushed?: (keys: KeyUsage[], flushNo: number) => void;
  /** Called when a batch could not be written (the database is out). */
  onFlushError?: (err: unknown) => void;
  /** Whether the timer should try to flush now (not while the database is known to be out). */
  canFlush?: () => boolean;
}

interface PendingKey {
  tokens: number;
  requests: number;
  lastUsedAt: number;
  buckets: Map<number, number>;
}

/**
 * The accounting pipeline. A charge is appended to the journal first (so a
 * crash loses nothing), then counted in memory (so admission sees it at once),
 * then written to the database in batches by `flush`, in one transaction with
 * this instance's checkpoint (so a replay never charges twice).
 */
export class UsageLedger {
  private seq = 0;
  private pending: UsageEvent[] = [];
  /** A batch whose write failed, to be retried as it is before anything newer. */
  private retry: UsageEvent[] | undefined;
  /** Events of the batch being written right now. */
  private writing = 0;
  private readonly byKey = new Map<string, PendingKey>();
  private readonly flushing = new SingleFlight<boolean>();
  private timer: ReturnType<typeof setInterval> | undefined;
  private readonly holds = new Set<{ force: () => void }>();
  private closed = false;
  /** Number of committed flushes; see `onFlushed`. */
  flushNo = 0;
  /** The last RECENT_FLUSHES flushes' usage per key, oldest first: see `flushedSince`. */
  private readonly recent: RecentFlush[] = [];
  lastFlushError: string | undefined;

  private constructor(private readonly deps: LedgerDeps) {}

  /** Replays what the journal holds beyond the database's checkpoint, then flushes it. */
  static async open(deps: LedgerDeps): Promise<UsageLedger> {
    const ledger = new UsageLedger(deps);
    const done = await deps.storage.checkpoint(deps.instanceId);
    const { events, skipped } = deps.journal.read();
    if (skipped > 0) {
      deps.log.warn({ skipped, journal: deps.journal.file }, "skipped unreadable journal records");
    }
    ledger.seq = done;
    for (const e of events) {
      ledger.seq = Math.max(ledger.seq, e.seq);
      if (e.seq > done) ledger.add(e);
    }
    if (ledger.pending.length > 0) {
      deps.log.info({ events: ledger.pending.length }, "replaying usage journal");
    }
    if (!(await ledger.flush())) {
      throw new Error(`could not replay the usage journal: ${ledger.lastFlushError}`);
    }
    return ledger;
  }

  /**
   * Marks a request whose cost is still to come (a response being read, a
   * stream being drained); `close` waits for it. Call the result once done.
   * `force` is called if shutdown cannot wait any longer: it must charge
   * what the request is known to have cost so far, and release the hold. It
   * need not stop the request: the process exits after shutdown, and a
   * request charged by force is never charged again.
   */
  hold(force: () => void = () => {}): () => void {
    const h = { force };
    this.holds.add(h);
    return () => {
      this.holds.delete(h);
    };
  }

  /** Requests whose cost is not yet recorded. */
  get inflight(): number {
    return this.holds.size;
  }

  /**
   * Charges `tokens` (weighted units) to a key, with what they were made of.
   * Synchronous: the event is in the journal when this returns.
   */
  record(keyId: string, tokens: number, requests = 1, detail?: ChargeDetail): void {
    if (this.closed) {
      this.deps.log.error({ keyId, tokens }, "usage recorded after shutdown was lost");
      return;
    }
    const e: UsageEvent = { seq: ++this.seq, keyId, at: this.deps.clock(), tokens, requests };
    if (detail) e.detail = detail;
    this.deps.journal.append(e);
    this.add(e);
  }

  /** This instance's usage of a key that the database may not have yet, per bucket. */
  pendingBuckets(keyId: string): Map<number, number> | undefined {
    return this.byKey.get(keyId)?.buckets;
  }

  /** Lifetime totals of a key not yet in the database. */
  pendingTotals(keyId: string): { tokens: number; requests: number; lastUsedAt: number | null } {
    const p = this.byKey.get(keyId);
    return p
      ? { tokens: p.tokens, requests: p.requests, lastUsedAt: p.lastUsedAt }
      : { tokens: 0, requests: 0, lastUsedAt: null };
  }

  /**
   * A key's usage this instance wrote to the database after flush number
   * `mark` (a record read when `flushNo` was `mark` lacks it, and the
   * pending totals no longer hold it). As far back as the last
   * RECENT_FLUSHES flushes.
   */
  flushedSince(keyId: string, mark: number): { tokens: number; requests: number } {
    let tokens = 0;
    let requests = 0;
    for (let i = this.recent.length - 1; i >= 0; i--) {
      const flush = this.recent[i] as RecentFlush;
      if (flush.flushNo <= mark) break;
      const at = flush.keyIds.indexOf(keyId);
      if (at < 0) continue;
      tokens += flush.tokens[at] as number;
      requests += flush.requests[at] as number;
    }
    return { tokens, requests };
  }

  /** Events not yet in the database. */
  get backlog(): number {
    return this.pending.length + (this.retry?.length ?? 0) + this.writing;
  }

  startTimer(intervalMs: number): void {
    this.timer = setInterval(() => {
      if (this.deps.canFlush?.() ?? true) void this.flush();
    }, intervalMs);
    this.timer.unref?.();
  }

  /** Writes pending events to the database; true when nothing is left pending. */
  flush(): Promise<boolean> {
    return this.flushing.run(() => this.flushOnce());
  }

  /** Stops the timer and writes what is pending. The journal keeps anything that could not be written. */
  async close(waitMs = 0): Promise<boolean> {
    const deadline = Date.now() + waitMs;
    while (this.holds.size > 0 && Date.now() < deadline) await Bun.sleep(20);
    this.chargeInFlight();
    if (this.timer) clearInterval(this.timer);
    // With the database known to be out, do not wait on it: the journal keeps
    // everything and the next start replays it.
    let ok = (this.deps.canFlush?.() ?? true) && (await this.flush());
    if (!ok && (this.deps.canFlush?.() ?? true)) ok = await this.flush();
    this.closed = true;
    this.deps.journal.close();
    return ok;
  }

  /**
   * Out of time: whatever is still running is charged what it is known to
   * have cost (an estimate where the upstream has not said), never nothing.
   * The charges are in the journal when this returns.
   */
  chargeInFlight(): void {
    for (const h of [...this.holds]) {
      try {
        h.force();
      } catch (err) {
        this.deps.log.error(
          { err: (err as Error).message },
          "could not charge a request cut by shutdown",
        );
      }
      this.holds.delete(h);
    }
  }

  private add(e: UsageEvent): void {
    this.pending.push(e);
    let p = this.byKey.get(e.keyId);
    if (!p) {
      p = { tokens: 0, requests: 0, lastUsedAt: 0, buckets: new Map() };
      this.byKey.set(e.keyId, p);
    }
    p.tokens += e.tokens;
    p.requests += e.requests;
    p.lastUsedAt = Math.max(p.lastUsedAt, e.at);
    const b = bucketStartOf(e.at);
    p.buckets.set(b, (p.buckets.get(b) ?? 0) + e.tokens);
  }

  private async flushOnce(): Promise<boolean> {
    // A batch whose write failed is retried first, alone and unchanged: its
    // write may in fact have committed (the answer was lost), and storage
    // skips a batch its checkpoint already covers, so it never lands twice.
    if (this.retry) {
      if (!(await this.write(this.retry))) return false;
      this.retry = undefined;
    }
    if (this.pending.length > 0) {
      const batch = this.pending;
      this.pending = [];
      this.writing = batch.length;
      const ok = await this.write(batch).finally(() => {
        this.writing = 0;
      });
      if (!ok) {
        this.retry = batch;
        return false;
      }
    }
    try {
      if (this.pending.length === 0) this.deps.journal.truncate();
      else if (this.deps.journal.size() > COMPACT_BYTES) {
        this.deps.journal.compact([...(this.retry ?? []), ...this.pending]);
      }
    } catch (err) {
      // Only housekeeping failed: everything is in the database, and replay
      // skips what the checkpoint covers. Log it and go on.
      this.deps.log.error({ err: (err as Error).message }, "could not empty the usage journal");
    }
    return this.pending.length === 0;
  }

  /** Writes one batch (a run of consecutive sequence numbers); true once it is in the database. */
  private async write(batch: UsageEvent[]): Promise<boolean> {
    const firstSeq = batch[0]?.seq ?? 0;
    const lastSeq = batch[batch.length - 1]?.seq ?? 0;
    let keys: KeyUsage[];
    try {
      const resolved = await this.resolveUnverified(batch);
      keys = aggregate(resolved);
      const models = aggregateModels(resolved);
      await withTimeout(
        this.deps.storage.applyUsage({
          instanceId: this.deps.instanceId,
          firstSeq,
          lastSeq,
          keys,
          models,
        }),
        APPLY_TIMEOUT_MS,
        `no answer from the database within ${APPLY_TIMEOUT_MS} ms`,
      );
    } catch (err) {
      this.lastFlushError = err instanceof Error ? err.message : String(err);
      this.deps.log.error(
        { err: this.lastFlushError, backlog: this.backlog + batch.length },
        "usage flush failed",
      );
      this.deps.onFlushError?.(err);
      return false;
    }
    this.lastFlushError = undefined;
    this.flushNo++;
    this.recent.push({
      flushNo: this.flushNo,
      keyIds: keys.map((k) => k.keyId),
      tokens: keys.map((k) => k.tokens),
      requests: keys.map((k) => k.requests),
    });
    if (this.recent.length > RECENT_FLUSHES) this.recent.shift();
    for (const k of aggregate(batch)) this.settle(k);
    this.deps.onFlushed?.(keys, this.flushNo);
    return true;
  }

  /**
   * Usage of keys let through unverified during an outage carries the key's
   * hash; now that the database answers, it goes to the key with that hash,
   * or is dropped (and logged) when there is none.
   */
  private async resolveUnverified(events: UsageEvent[]): Promise<UsageEvent[]> {
    if (!events.some((e) => e.keyId.startsWith(UNVERIFIED_PREFIX))) return events;
    const ids = new Map<string, string | null>();
    for (const e of events) {
      if (!e.keyId.startsWith(UNVERIFIED_PREFIX) || ids.has(e.keyId)) continue;
      const key = await this.deps.storage.getKeyByHash(e.keyId.slice(UNVERIFIED_PREFIX.length));
      ids.set(e.keyId, key?.id ?? null);
    }
    const out: UsageEvent[] = [];
    for (const e of events) {
      if (!e.keyId.startsWith(UNVERIFIED_PREFIX)) {
        out.push(e);
        continue;
      }
      const id = ids.get(e.keyId);
      if (id) out.push({ ...e, keyId: id });
      else
        this.deps.log.warn(
          { tokens: e.tokens },
          "usage of an unknown key let through during an outage was dropped",
        );
    }
    return out;
  }

  /** Removes committed usage from the pending view. */
  private settle(k: KeyUsage): void {
    const p = this.byKey.get(k.keyId);
    if (!p) return;
    p.tokens -= k.tokens;
    p.requests -= k.requests;
    for (const b of k.buckets) {
      const left = (p.buckets.get(b.bucketStart) ?? 0) - b.tokens;
      if (left > 0) p.buckets.set(b.bucketStart, left);
      else p.buckets.delete(b.bucketStart);
    }
    if (p.requests <= 0 && p.buckets.size === 0) this.byKey.delete(k.keyId);
  }
}

/** One entry per key and one bucket per (key, bucket start): a batch never touches a row twice. */
export function aggregate(events: UsageEvent[]): KeyUsage[] {
  const keys = new Map<
    string,
    KeyUsage & { byBucket: Map<number, { tokens: number; requests: number }> }
  >();
  for (const e of events) {
    let k = keys.get(e.keyId);
    if (!k) {
      k = {
        keyId: e.keyId,
        tokens: 0,
        requests: 0,
        lastUsedAt: 0,
        buckets: [],
        byBucket: new Map(),
      };
      keys.set(e.keyId, k);
    }
    k.tokens += e.tokens;
    k.requests += e.requests;
    k.lastUsedAt = Math.max(k.lastUsedAt, e.at);
    const start = bucketStartOf(e.at);
    const b = k.byBucket.get(start) ?? { tokens: 0, requests: 0 };
    b.tokens += e.tokens;
    b.requests += e.requests;
    k.byBucket.set(start, b);
  }
  return [...keys.values()].map(({ byBucket, ...k }) => ({
    ...k,
    buckets: [...byBucket].map(([bucketStart, b]) => ({ bucketStart, ...b })),
  }));
}
