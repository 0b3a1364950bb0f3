import type { StorageHealth } from "../storage/health.ts";
import type { BucketUsage, KeyUsage, Storage } from "../storage/types.ts";
import { BUCKET_MS, type Bucket, bucketStartOf, WINDOW_MS, windowFloor } from "../time/buckets.ts";
import { SingleFlight } from "../util/single-flight.ts";
import { withTimeout } from "../util/timeout.ts";

/**
 * How often a background round re-reads the part of a weekly key's window
 * older than 5 hours (2016 buckets a key at most; rounds in between read the
 * last 5 hours as for any key). Those buckets change only when a journal is
 * replayed after an outage, so a minute's staleness there costs nothing
 * in practice, where re-reading a week every second would.
 */
export const WEEK_FULL_MS = 60_000;

interface Entry {
  /** How far back its usage counts (WINDOW_MS, or WEEK_MS for a weekly key). */
  spanMs: number;
  /** The database's buckets for the key, as of the last load. */
  stored: Bucket[];
  /** When the read last applied started (its recent buckets are that fresh). */
  loadedAt: number;
  /** Generation of the read last applied; an older read arriving later is ignored. */
  gen: number;
  /** Our own flushes committed since the load started, tagged with their flush number. */
  flushedSince: Array<{ flushNo: number; bucketStart: number; tokens: number }>;
  loading: SingleFlight<void>;
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
  /**
   * A round that has not answered within this long is given up on, so that
   * a query that never answers does not hold back every round after it.
   * Default: 4 x refreshMs (the default staleMs: past that, requests re-read
   * for themselves anyway), at least the request wait (250 ms), so that a
   * briefly slow pool is not given a second round's query on top.
   */
  timeoutMs: number;
}

/**
 * What the view needs of this instance's accounting (the ledger provides it):
 * usage charged here that may not have reached the database yet.
 */
export interface PendingUsage {
  /** This key's charges not yet flushed, by bucket start; undefined when none. */
  pendingBuckets(keyId: string): Map<number, number> | undefined;
  /** Counts completed flushes: a read that began before a flush may miss its usage. */
  readonly flushNo: number;
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
  private lastWeekFullAt = -Infinity;
  /** Keys used lately (a round drops them once idle, use adds them back): what a round reads. */
  private readonly active = new Set<string>();
  /**
   * Bumped by stop(), by the database's recovery and by a round's timeout: a
   * round that started in an earlier epoch no longer reports its failure.
   */
  private epoch = 0;

  constructor(
    private readonly storage: Storage,
    private readonly ledger: PendingUsage,
    private readonly clock: () => number,
    private readonly refreshMs: number,
    private readonly health?: StorageHealth,
    /** How long a request waits for a refresh before using the buckets it has. */
    private readonly refreshWaitMs = 250,
  ) {
    health?.onRecovered(() => {
      this.epoch++;
    });
  }

  /**
   * All buckets that count for `keyId` now (may contain the same start twice;
   * callers sum). `readAfter` (a `readMark()`) waits for a read that began
   * after the mark was taken: for a caller that shows the buckets beside
   * figures it has just read from the database itself.
   */
  async buckets(
    keyId: string,
    options: { readAfter?: number; spanMs?: number } = {},
  ): Promise<Bucket[]> {
    const now = this.clock();
    const spanMs = options.spanMs ?? WINDOW_MS;
    let e = this.entries.get(keyId);
    if (e && e.spanMs < spanMs) {
      // The key gained a weekly limit: what it holds covers too short a span.
      this.entries.delete(keyId);
      e = undefined;
    }
    if (!e) {
      e = {
        spanMs,
        stored: [],
        loadedAt: -Infinity,
        gen: 0,
        flushedSince: [],
        loading: new SingleFlight<void>(),
        touchedAt: now,
      };
      this.entries.set(keyId, e);
    }
    e.touchedAt = now;
    this.active.add(keyId);
    const maxAge = this.background?.staleMs ?? this.refreshMs;
    // While the database is out, what this instance knows is all there is:
    // the last buckets read plus everything charged here since.
    if (this.health?.degraded) {
      // nothing to read from
    } else if (options.readAfter !== undefined) await this.readAfter(keyId, e, options.readAfter);
    else if (now - e.loadedAt >= maxAge) await this.refresh(keyId, e);
    return this.assemble(keyId, e);
  }

  /**
   * The key's buckets as this instance knows them now, without asking the
   * database: the last read plus everything charged here since (what a
   * caller that cannot wait for the database goes by).
   */
  knownBuckets(keyId: string): Bucket[] {
    return this.assemble(keyId, this.entries.get(keyId));
  }

  private assemble(keyId: string, e: Entry | undefined): Bucket[] {
    const out: Bucket[] = e ? [...e.stored, ...e.flushedSince] : [];
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

  /** For `buckets(…, { readAfter })`: every read that begins from now on is past it. */
  readMark(): number {
    return this.generation;
  }

  /** Drops a key (deleted or changed) so its next use reloads it. */
  forget(keyId: string): void {
    this.entries.delete(keyId);
    this.active.delete(keyId);
  }

  /** Forgets keys unused for a window's length, to bound memory. */
  sweep(): void {
    const cutoff = this.clock() - WINDOW_MS;
    for (const [id, e] of this.entries)
      if (e.touchedAt < cutoff && !e.loading.running) {
        this.entries.delete(id);
        this.active.delete(id);
      }
  }

  /** Starts the background rounds, one every `refreshMs`. */
  start(options: Partial<BackgroundRefreshOptions> = {}): void {
    this.background = {
      activeMs: 10_000,
      fullMs: 1000,
      staleMs: 4 * this.refreshMs,
      timeoutMs: Math.max(this.refreshWaitMs, 4 * this.refreshMs),
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
    this.epoch++;
  }

  /**
   * One background round: every key used within `activeMs` (and loaded
   * once) re-read in one query. A call while a round runs joins it, so
   * rounds never overlap, unless one has not answered within `timeoutMs`:
   * the next starts without it, a late answer of it is applied only where no
   * newer read was, and its failure is not reported. Never rejects: a
   * failure goes to the health monitor, unless the database recovered (or
   * the rounds stopped) since the round began.
   */
  refreshActive(): Promise<void> {
    if (this.round) return this.round;
    const epoch = this.epoch;
    const timeoutMs = this.background?.timeoutMs ?? Number.POSITIVE_INFINITY;
    const round: Promise<void> = withTimeout(this.runRound(epoch), timeoutMs)
      .catch(() => {
        if (this.epoch === epoch) this.epoch++;
      })
      .finally(() => {
        if (this.round === round) this.round = undefined;
      });
    this.round = round;
    return round;
  }

  private async runRound(epoch: number): Promise<void> {
    const opts = this.background;
    if (!opts || this.health?.degraded) return;
    const now = this.clock();
    const targets: Array<[string, Entry]> = [];
    // Only keys used lately, not every key in memory (a window's worth):
    // idle ones leave the set here, and rejoin on their next use.
    for (const id of this.active) {
      const e = this.entries.get(id);
      if (!e || now - e.touchedAt >= opts.activeMs) this.active.delete(id);
      else if (e.loadedAt !== -Infinity) targets.push([id, e]);
    }
    if (targets.length === 0) return;
    const full = now - this.lastFullAt >= opts.fullMs;
    const weekFull = full && now - this.lastWeekFullAt >= WEEK_FULL_MS;
    const since = full
      ? windowFloor(now)
      : Math.max(windowFloor(now), bucketStartOf(now) - BUCKET_MS);
    // Weekly keys' older buckets are re-read only now and then (WEEK_FULL_MS).
    const sinceOf = (e: Entry) => (weekFull ? windowFloor(now, e.spanMs) : since);
    const groups = new Map<number, string[]>();
    for (const [id, e] of targets) {
      const from = sinceOf(e);
      const ids = groups.get(from);
      if (ids) ids.push(id);
      else groups.set(from, [id]);
    }
    const read = this.beginRead();
    const rows = new Map<string, BucketUsage[]>();
    try {
      const answers = await Promise.all(
        [...groups].map(([from, ids]) => this.storage.usageSinceMany(ids, from)),
      );
      for (const answer of answers) for (const [id, r] of answer) rows.set(id, r);
    } catch (err) {
      if (this.epoch === epoch) this.health?.reportFailure(err);
      return;
    }
    if (full) this.lastFullAt = Math.max(this.lastFullAt, read.startedAt);
    if (weekFull) this.lastWeekFullAt = Math.max(this.lastWeekFullAt, read.startedAt);
    for (const [id, e] of targets)
      if (this.entries.get(id) === e) applyRead(e, rows.get(id) ?? [], sinceOf(e), read);
  }

  /**
   * Waits for fresh buckets; but when it already has some, not for long: a
   * slow pool must not stall admission. If the database cannot answer, what
   * this instance knows is used (and the health monitor takes over).
   */
  private async refresh(keyId: string, e: Entry): Promise<void> {
    const loading = this.load(keyId, e).catch(() => {});
    if (e.loadedAt === -Infinity) return loading;
    await withTimeout(loading, this.refreshWaitMs).catch(() => {});
  }

  /**
   * Waits, as long as it takes, for a read begun after `mark` to be applied.
   * A load under way may have begun before the mark: then one more follows.
   * Gives up (keeping what it has) when a load fails.
   */
  private async readAfter(keyId: string, e: Entry, mark: number): Promise<void> {
    for (let i = 0; i < 2 && e.gen <= mark; i++) {
      const ok = await this.load(keyId, e).then(
        () => true,
        () => false,
      );
      if (!ok) return;
    }
  }

  private load(keyId: string, e: Entry): Promise<void> {
    return e.loading.run(async () => {
      const read = this.beginRead();
      const since = windowFloor(read.startedAt, e.spanMs);
      try {
        applyRead(e, await this.storage.usageSince(keyId, since), since, read);
      } catch (err) {
        this.health?.reportFailure(err);
        throw err;
      }
    });
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
  const floor = windowFloor(read.startedAt, e.spanMs);
  const kept = e.stored.filter((b) => b.bucketStart >= floor && b.bucketStart < since);
  e.stored = kept.concat(rows.map((r) => ({ bucketStart: r.bucketStart, tokens: r.tokens })));
  if (e.spanMs > WINDOW_MS) e.stored = coarsenOlder(e.stored, windowFloor(read.startedAt));
  e.flushedSince = e.flushedSince.filter(
    (f) => f.flushNo > read.seenFlush || f.bucketStart < since,
  );
  e.loadedAt = read.startedAt;
  e.gen = read.gen;
}

const HOUR_MS = 60 * 60 * 1000;

/**
 * A weekly key's buckets older than `before` (the 5-hour floor) merged per
 * hour, each hour's total kept at the start of its newest 5-minute bucket: at
 * most 168 entries instead of 2016, so admission sums a week in about the
 * time it sums 5 hours. Usage so merged ages out of the week with the newest
 * bucket of its hour, up to 55 minutes late: never early, so the quota only
 * errs on its own side.
 */
export function coarsenOlder(buckets: Bucket[], before: number): Bucket[] {
  const out: Bucket[] = [];
  const hours = new Map<number, Bucket>();
  for (const b of buckets) {
    if (b.bucketStart >= before) {
      out.push(b);
      continue;
    }
    const hour = Math.floor(b.bucketStart / HOUR_MS);
    const h = hours.get(hour);
    if (!h) hours.set(hour, { bucketStart: b.bucketStart, tokens: b.tokens });
    else {
      h.bucketStart = Math.max(h.bucketStart, b.bucketStart);
      h.tokens += b.tokens;
    }
  }
  return [...hours.values(), ...out];
}
