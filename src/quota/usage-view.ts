import type { UsageLedger } from "../accounting/ledger.ts";
import type { StorageHealth } from "../storage/health.ts";
import type { BucketUsage, KeyUsage, Storage } from "../storage/types.ts";
import { BUCKET_MS, type Bucket, bucketStartOf, WINDOW_MS, windowFloor } from "./window.ts";

interface Entry {
  /** The database's buckets for the key, as of the last load. */
  stored: Bucket[];
  /** When the read last applied started (its recent buckets are that fresh). */
  loadedAt: number;
  /** Generation of the read last applied; an older read arriving later is ignored. */
  gen: number;
  /** Our own flushes committed since the load started, tagged with their flush number. */
  flushedSince: Array<{ flushNo: number; bucketStart: number; tokens: number }>;
  loading: Promise<void> | undefined;
  touchedAt: number;
}

/** A read of the database as it starts: what it is sure to include. */
interface Read {
  gen: number;
  /** Our flushes up to this number committed before the query was sent. */
  seenFlush: number;
  startedAt: number;
}

export interface BackgroundRefreshOptions {
  /** Keys used within this long are re-read by every round; others on their next use. */
  activeMs: number;
  /**
   * How often a round re-reads the whole window. In between, rounds read only
   * the current and previous bucket, where other instances' live flushes land;
   * older buckets change only when a journal is replayed after an outage.
   */
  fullMs: number;
  /** A copy older than this is re-read by the request itself: the rounds are lagging. */
  staleMs: number;
}

/**
 * A key's window usage as admission sees it: the database's buckets plus this
 * instance's usage that the database has or may not have yet. When in doubt it
 * counts a batch twice rather than not at all: admission errs on the side of
 * the quota.
 *
 * The database's buckets are re-read at most every `refreshMs`, which bounds
 * how stale other writers' usage can be: by the request itself, or, once
 * `start` runs, by a background round that re-reads every recently used key
 * in one query, so that requests for a loaded key never wait on the database.
 */
export class UsageView {
  private readonly entries = new Map<string, Entry>();
  private generation = 0;
  private background: BackgroundRefreshOptions | undefined;
  private timer: ReturnType<typeof setInterval> | undefined;
  private round: Promise<void> | undefined;
  private lastFullAt = -Infinity;

  constructor(
    private readonly storage: Storage,
    private readonly ledger: UsageLedger,
    private readonly clock: () => number,
    private readonly refreshMs: number,
    private readonly health?: StorageHealth,
    /** How long a request waits for a refresh before using the buckets it has. */
    private readonly refreshWaitMs = 250,
  ) {}

  /**
   * All buckets that count for `keyId` now (may contain the same start twice;
   * callers sum). `fresh` re-reads them when older than `refreshMs` even while
   * background rounds run: for a caller that shows them beside figures it has
   * just read from the database itself.
   */
  async buckets(keyId: string, options: { fresh?: boolean } = {}): Promise<Bucket[]> {
    const now = this.clock();
    let e = this.entries.get(keyId);
    if (!e) {
      e = {
        stored: [],
        loadedAt: -Infinity,
        gen: 0,
        flushedSince: [],
        loading: undefined,
        touchedAt: now,
      };
      this.entries.set(keyId, e);
    }
    e.touchedAt = now;
    const maxAge = options.fresh ? this.refreshMs : (this.background?.staleMs ?? this.refreshMs);
    // While the database is out, what this instance knows is all there is:
    // the last buckets read plus everything charged here since.
    if (now - e.loadedAt >= maxAge && !this.health?.degraded) await this.refresh(keyId, e);
    const out: Bucket[] = [...e.stored];
    for (const f of e.flushedSince) out.push(f);
    const pending = this.ledger.pendingBuckets(keyId);
    if (pending) for (const [bucketStart, tokens] of pending) out.push({ bucketStart, tokens });
    return out;
  }

  /** Ledger hook: our own committed usage, until a fresh load includes it for certain. */
  onFlushed(keys: KeyUsage[], flushNo: number): void {
    for (const k of keys) {
      const e = this.entries.get(k.keyId);
      if (!e) continue;
      for (const b of k.buckets)
        e.flushedSince.push({ flushNo, bucketStart: b.bucketStart, tokens: b.tokens });
    }
  }

  /** Drops a key (deleted or changed) so its next use reloads it. */
  forget(keyId: string): void {
    this.entries.delete(keyId);
  }

  /** Forgets keys unused for a window's length, to bound memory. */
  sweep(): void {
    const cutoff = this.clock() - WINDOW_MS;
    for (const [id, e] of this.entries)
      if (e.touchedAt < cutoff && !e.loading) this.entries.delete(id);
  }

  /** Starts the background rounds, one every `refreshMs`. */
  start(options: Partial<BackgroundRefreshOptions> = {}): void {
    this.background = {
      activeMs: 10_000,
      fullMs: 1000,
      staleMs: 4 * this.refreshMs,
      ...options,
    };
    this.timer ??= setInterval(() => void this.refreshActive(), this.refreshMs);
    this.timer.unref?.();
  }

  /**
   * Stops the rounds; requests refresh for themselves again. A round under way
   * is not waited for (the database may hang): closing storage ends it, and
   * its failure is no longer reported.
   */
  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    this.background = undefined;
  }

  /**
   * One background round: every key used within `activeMs` (and loaded
   * once) re-read in one query. A call while a round runs joins it, so
   * rounds never overlap. Never rejects: a failure goes to the health monitor.
   */
  refreshActive(): Promise<void> {
    this.round ??= this.runRound().finally(() => {
      this.round = undefined;
    });
    return this.round;
  }

  private async runRound(): Promise<void> {
    const opts = this.background;
    if (!opts || this.health?.degraded) return;
    const now = this.clock();
    const targets: Array<[string, Entry]> = [];
    for (const [id, e] of this.entries)
      if (e.loadedAt !== -Infinity && now - e.touchedAt < opts.activeMs) targets.push([id, e]);
    if (targets.length === 0) return;
    const full = now - this.lastFullAt >= opts.fullMs;
    const since = full
      ? windowFloor(now)
      : Math.max(windowFloor(now), bucketStartOf(now) - BUCKET_MS);
    const read = this.beginRead();
    let rows: Map<string, BucketUsage[]>;
    try {
      rows = await this.storage.usageSinceMany(
        targets.map(([id]) => id),
        since,
      );
    } catch (err) {
      if (this.background) this.health?.reportFailure(err);
      return;
    }
    if (full) this.lastFullAt = read.startedAt;
    for (const [id, e] of targets)
      if (this.entries.get(id) === e) applyRead(e, rows.get(id) ?? [], since, read);
  }

  /**
   * Waits for fresh buckets; but when it already has some, not for long: a
   * slow pool must not stall admission. If the database cannot answer, what
   * this instance knows is used (and the health monitor takes over).
   */
  private async refresh(keyId: string, e: Entry): Promise<void> {
    const loading = this.load(keyId, e).catch(() => {});
    if (e.loadedAt === -Infinity) return loading;
    let timer: ReturnType<typeof setTimeout> | undefined;
    await Promise.race([
      loading,
      new Promise<void>((resolve) => {
        timer = setTimeout(resolve, this.refreshWaitMs);
      }),
    ]).finally(() => clearTimeout(timer));
  }

  private load(keyId: string, e: Entry): Promise<void> {
    e.loading ??= (async () => {
      const read = this.beginRead();
      const since = windowFloor(read.startedAt);
      try {
        applyRead(e, await this.storage.usageSince(keyId, since), since, read);
      } catch (err) {
        this.health?.reportFailure(err);
        throw err;
      } finally {
        e.loading = undefined;
      }
    })();
    return e.loading;
  }

  /** Taken synchronously just before a query is sent. */
  private beginRead(): Read {
    // Flushes committed before the query starts are surely in its result.
    return { gen: ++this.generation, seenFlush: this.ledger.flushNo, startedAt: this.clock() };
  }
}

/**
 * Puts a read of the buckets from `since` on into an entry. The read replaces
 * those buckets, and our own flushes into them that it surely includes stop
 * being counted separately; older buckets stay as the last full read left
 * them. A read that started before the one already applied is dropped: it
 * may lack flushes that entry no longer counts separately.
 */
function applyRead(e: Entry, rows: BucketUsage[], since: number, read: Read): void {
  if (read.gen <= e.gen) return;
  const floor = windowFloor(read.startedAt);
  const kept = e.stored.filter((b) => b.bucketStart >= floor && b.bucketStart < since);
  e.stored = kept.concat(rows.map((r) => ({ bucketStart: r.bucketStart, tokens: r.tokens })));
  e.flushedSince = e.flushedSince.filter(
    (f) => f.flushNo > read.seenFlush || f.bucketStart < since,
  );
  e.loadedAt = read.startedAt;
  e.gen = read.gen;
}
